// Pure helpers for what the composer sends: slash-command completion and
// the paste check for IRC (how many lines a text becomes and how long they
// take at the account's pace). No DOM here (node --test imports this file).

import { complete } from './input.js';

/** More lines than this to IRC: ask before sending. */
export const PASTE_CONFIRM_LINES = 3;

/** The UTF-8 length of a string. */
const bytes = (s) => new TextEncoder().encode(s).length;

/**
 * Longest message text the backend puts in one IRC line to `target`
 * (as `backend::pacing::irc_text_limit`: 512 bytes less CRLF, "PRIVMSG ",
 * the target, " :" and about 100 bytes of relay prefix).
 */
export function ircTextLimit(target) {
  return Math.max(64, 512 - (2 + 8 + bytes(target) + 2 + 100));
}

/**
 * The lines the backend will send for `text` (as `backend::pacing::
 * split_message`): its own lines, each cut at the last space before `max`
 * bytes, inside a word only when one word is longer; empty lines dropped.
 */
export function splitLines(text, max) {
  const out = [];
  for (const raw of text.split('\n')) {
    let rest = raw.replace(/\r$/, '');
    while (bytes(rest) > max) {
      // The longest prefix of at most `max` bytes.
      let cut = 0;
      let used = 0;
      for (const ch of rest) {
        const n = bytes(ch);
        if (used + n > max) break;
        used += n;
        cut += ch.length;
      }
      const head = rest.slice(0, cut);
      const space = head.lastIndexOf(' ');
      const at = space > 0 ? space : cut;
      const piece = rest.slice(0, at).replace(/ +$/, '');
      if (piece) out.push(piece);
      rest = rest.slice(at).replace(/^ +/, '');
    }
    if (rest.trim()) out.push(rest.replace(/ +$/, ''));
  }
  return out;
}

/**
 * How long `lines` lines take to go at `pacing` ({burst, interval_ms}, from
 * the account object), with the burst not yet spent: the first `burst` at
 * once, then one per interval.
 */
export function deliveryMs(lines, pacing) {
  if (!pacing) return 0;
  return Math.max(0, lines - pacing.burst) * pacing.interval_ms;
}

/** "about 30 seconds", "about 2 minutes", "under a second". */
export function describeDuration(ms) {
  if (ms < 1000) return 'under a second';
  const s = Math.round(ms / 1000);
  if (s < 90) return `about ${s} second${s === 1 ? '' : 's'}`;
  const m = Math.round(s / 60);
  if (m < 90) return `about ${m} minutes`;
  const h = Math.round(m / 60);
  return `about ${h} hour${h === 1 ? '' : 's'}`;
}

/** Whether `text` is a command (not `//`, which sends the text). */
export function isCommand(text) {
  return /^\/[^/\s]/.test(text);
}

/**
 * A paste that needs the person's go-ahead: text (not a command) that
 * becomes more than PASTE_CONFIRM_LINES lines on a paced (IRC) account.
 * Returns {lines, ms, question} or null.
 */
export function pasteCheck(text, account, target) {
  if (!account || !account.pacing || isCommand(text)) return null;
  const body = text.startsWith('//') ? text.slice(1) : text;
  const lines = splitLines(body, ircTextLimit(target)).length;
  if (lines <= PASTE_CONFIRM_LINES) return null;
  const ms = deliveryMs(lines, account.pacing);
  const { burst, interval_ms: interval } = account.pacing;
  const pace = `${burst} lines at once, then one every ${interval / 1000} s`;
  const question = ms > 0
    ? `This sends ${lines} lines to ${target}. At this network's pace (${pace}) the last one arrives in ${describeDuration(ms)} (later if you sent other lines just before); what you send meanwhile waits behind them.`
    : `This sends ${lines} lines to ${target}.`;
  return { lines, ms, question };
}

/**
 * Tab completion of a command name: when the caret is in the first word and
 * it starts with "/". `commands`: [{name}] from the `commands` op. Returns
 * what `complete` returns, or null.
 */
export function completeCommand(text, caret, commands, state = null) {
  if (!text.startsWith('/') || text.startsWith('//')) return null;
  const cycling = state && state.text === text && state.caret === caret;
  const firstSpace = text.search(/\s/);
  if (!cycling && firstSpace !== -1 && caret > firstSpace) return null;
  const names = commands.map((c) => `/${c.name}`);
  return complete(text, caret, names, state, ' ');
}

/** The chat a `/join` command names (with the `#` the backend adds on IRC), or null. */
export function joinTarget(text, protocol) {
  const m = /^\/join\s+(\S+)/i.exec(text);
  if (!m) return null;
  const name = m[1];
  return protocol === 'prpl-irc' && !/^[#&+!]/.test(name) ? `#${name}` : name;
}
