// The client's own rules, checked on its source: text-only rendering (no
// HTML parsing of any string) and modules that import without a DOM.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');
const sources = fs.readdirSync(web).filter((f) => f.endsWith('.js'));

describe('web client source', () => {
  it('never parses a string as HTML and never sets inline styles from data', () => {
    for (const f of sources) {
      const s = fs.readFileSync(path.join(web, f), 'utf8');
      for (const bad of [/\.innerHTML\b/, /\.outerHTML\s*=/, /insertAdjacentHTML/, /document\.write/, /\beval\(/, /new Function\(/, /setAttribute\(\s*['"]style/]) {
        assert.doesNotMatch(s, bad, `${f} uses ${bad}`);
      }
    }
  });

  it('imports modules by relative path (the same files work in node and the browser)', () => {
    for (const f of sources) {
      const s = fs.readFileSync(path.join(web, f), 'utf8');
      for (const m of s.matchAll(/^import .* from '([^']+)';$/gm)) assert.match(m[1], /^\.\/[a-z]+\.js$/, `${f} imports ${m[1]}`);
    }
  });

  it('has every module the entry page loads listed for the proxy to serve', () => {
    // src/proxy embeds web/ file by file: a new module must be added there too.
    const imported = new Set(['app.js']);
    for (const f of sources) {
      const s = fs.readFileSync(path.join(web, f), 'utf8');
      for (const m of s.matchAll(/from '\.\/([a-z]+\.js)'/g)) imported.add(m[1]);
    }
    for (const f of imported) assert.ok(sources.includes(f), `${f} is imported but missing`);
    const proxy = ['src/proxy/http/web.rs', 'src/proxy/web.rs'].map((p) => path.join(web, '..', p)).find((p) => fs.existsSync(p));
    if (!proxy) return;
    const listed = fs.readFileSync(proxy, 'utf8');
    const missing = [...imported].filter((f) => !listed.includes(`"/${f}"`));
    assert.deepEqual(missing, [], `modules the proxy does not serve (add them to ${path.relative(path.join(web, '..'), proxy)})`);
  });
});
