// Pure helpers for the composer: Tab completion of nicks and input history.
// No DOM here (node --test imports this file).

/**
 * Completes the word before the caret from `names` (case-insensitive
 * prefix; the most recent speakers first if `names` is ordered that way).
 * A word at the start of the message gets ": " after it; elsewhere " ".
 * Pressing Tab again cycles: pass the `state` returned by the previous call
 * (null when the text changed in between). `startSuffix`: what follows a
 * word at the start instead of ": " (" " for command names).
 *
 * Returns {text, caret, state} or null when nothing matches.
 */
export function complete(text, caret, names, state = null, startSuffix = ': ') {
  let start;
  let prefix;
  let matches;
  let index;
  let after;
  if (state && state.text === text && state.caret === caret) {
    ({ start, prefix, matches, after } = state);
    index = (state.index + 1) % matches.length;
  } else {
    start = caret;
    while (start > 0 && !/\s/.test(text[start - 1])) start--;
    prefix = text.slice(start, caret);
    if (!prefix) return null;
    const lower = prefix.toLowerCase();
    const seen = new Set();
    matches = [];
    for (const n of names) {
      if (!n || seen.has(n) || !n.toLowerCase().startsWith(lower)) continue;
      seen.add(n);
      matches.push(n);
    }
    if (!matches.length) return null;
    index = 0;
    after = text.slice(caret);
  }
  const word = matches[index];
  // Cycling replaces what the previous completion inserted.
  const before = text.slice(0, start);
  const suffix = start === 0 ? startSuffix : ' ';
  const inserted = word + (after.startsWith(' ') ? (start === 0 ? startSuffix.trimEnd() : '') : suffix);
  const newText = before + inserted + after;
  const newCaret = before.length + inserted.length + (after.startsWith(' ') ? 1 : 0);
  return { text: newText, caret: newCaret, state: { text: newText, caret: newCaret, start, prefix, matches, index, after } };
}

/**
 * What the person sent, newest last, for Up/Down in the composer. `up()` and
 * `down()` move through it; the text being written when they started is kept
 * and comes back at the bottom.
 */
export class InputHistory {
  constructor(max = 100) {
    this.max = max;
    this.items = [];
    this.pos = null; // index into items while browsing, null otherwise
    this.pending = '';
  }

  push(text) {
    if (!text.trim()) return;
    if (this.items[this.items.length - 1] !== text) this.items.push(text);
    if (this.items.length > this.max) this.items.shift();
    this.pos = null;
  }

  /** The older entry, or null when there is none (the text stays as is). */
  up(current) {
    if (!this.items.length) return null;
    if (this.pos === null) {
      this.pending = current;
      this.pos = this.items.length - 1;
    } else if (this.pos > 0) this.pos--;
    else return null;
    return this.items[this.pos];
  }

  /** The newer entry, the text being written at the bottom, or null when not browsing. */
  down() {
    if (this.pos === null) return null;
    if (this.pos < this.items.length - 1) {
      this.pos++;
      return this.items[this.pos];
    }
    this.pos = null;
    return this.pending;
  }

  /** The person edited the text: browsing ends. */
  reset() {
    this.pos = null;
  }
}

/**
 * Names to complete in a conversation: recent speakers first (newest
 * first), then the other members, then the other person of an IM.
 */
export function completionNames(e, self) {
  const names = [];
  for (let i = e.messages.length - 1; i >= 0 && names.length < 50; i--) {
    const m = e.messages[i];
    if (m.direction === 'in' && m.sender && !names.includes(m.sender)) names.push(m.sender);
  }
  const members = [...e.members.keys()].sort((a, b) => a.localeCompare(b, undefined, { sensitivity: 'base' }));
  for (const n of members) if (!names.includes(n)) names.push(n);
  if (e.kind === 'im' && !names.includes(e.name)) names.push(e.name);
  return names.filter((n) => n !== self);
}
