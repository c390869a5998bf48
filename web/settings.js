// Settings of this browser (theme, clock, joins/parts, notifications), kept in
// localStorage. The parsing is pure (node --test); `applySettings` and the
// settings page touch the DOM only when called.

export const DEFAULTS = Object.freeze({
  theme: 'system', // system | light | dark
  clock: 'auto', // auto (the locale's) | 12 | 24
  hideJoins: false, // leave out joins, parts and quits
  notifications: false, // desktop notifications and Web Push on this browser (turned on from the settings page only)
});

const CHOICES = { theme: ['system', 'light', 'dark'], clock: ['auto', '12', '24'] };
const KEY = 'sapphire.settings';

/** Settings from stored JSON: unknown keys and bad values fall back to the defaults. */
export function parseSettings(json) {
  let raw = {};
  try {
    raw = JSON.parse(json || '{}') || {};
  } catch (_) { /* corrupt: defaults */ }
  const s = { ...DEFAULTS };
  for (const [k, allowed] of Object.entries(CHOICES)) if (allowed.includes(raw[k])) s[k] = raw[k];
  if (typeof raw.hideJoins === 'boolean') s.hideJoins = raw.hideJoins;
  if (typeof raw.notifications === 'boolean') s.notifications = raw.notifications;
  return s;
}

export function loadSettings(storage) {
  try {
    return parseSettings(storage.getItem(KEY));
  } catch (_) {
    return { ...DEFAULTS };
  }
}

export function saveSettings(storage, s) {
  try {
    storage.setItem(KEY, JSON.stringify(s));
  } catch (_) { /* storage disabled: this tab keeps them */ }
}

/** The theme on the root element (app.css picks colours from it). */
export function applySettings(s, root = document.documentElement) {
  if (s.theme === 'system') delete root.dataset.theme;
  else root.dataset.theme = s.theme;
}

/**
 * Wires the settings form: each control shows the current value and a
 * change is saved, applied, and reported with onChange(settings).
 */
export function bindSettingsForm(form, get, onChange) {
  const controls = {
    theme: form.querySelector('#set-theme'),
    clock: form.querySelector('#set-clock'),
    hideJoins: form.querySelector('#set-hide-joins'),
  };
  const show = () => {
    const s = get();
    controls.theme.value = s.theme;
    controls.clock.value = s.clock;
    controls.hideJoins.checked = s.hideJoins;
  };
  form.addEventListener('change', () => {
    // Notifications are turned on and off by notifications.js (a
    // permission prompt, a push subscription): kept as they are here.
    onChange(parseSettings(JSON.stringify({
      theme: controls.theme.value, clock: controls.clock.value, hideJoins: controls.hideJoins.checked,
      notifications: get().notifications,
    })));
  });
  form.addEventListener('submit', (ev) => ev.preventDefault());
  return show;
}
