//! The console's only style sheet and script, embedded in the binary: no front-end
//! build, nothing fetched from elsewhere.

use axum::http::header;
use axum::response::IntoResponse;

const CSS: &str = r#"
:root { --fg:#1d2733; --muted:#5f6b7a; --line:#d8dee6; --bg:#f5f7fa; --accent:#0b66c3; --ok:#1b7f3b; --bad:#b42318; --warn:#a15c00; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
code, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size:13px; }
header.top { display:flex; align-items:center; gap:24px; background:#14212e; color:#fff; padding:0 20px; height:48px; }
header.top .brand { color:#fff; font-weight:700; font-size:16px; }
header.top nav a { color:#c9d6e3; margin-right:18px; } header.top nav a.active { color:#fff; font-weight:600; }
header.top .signout { margin-left:auto; } header.top .signout button { color:#c9d6e3; }
main { padding:20px 28px; max-width:1200px; }
main.signin { max-width:420px; margin:80px auto; background:#fff; border:1px solid var(--line); border-radius:6px; padding:28px; }
h1 { font-size:20px; margin:0 0 16px; } h2 { font-size:16px; margin:24px 0 10px; }
.titlebar { display:flex; align-items:center; gap:12px; } .titlebar .right { margin-left:auto; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); }
th, td { text-align:left; padding:7px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef2f6; font-weight:600; font-size:13px; }
dl.info { display:grid; grid-template-columns: 180px 1fr; background:#fff; border:1px solid var(--line); padding:12px 16px; margin:0; }
dl.info dt { color:var(--muted); padding:4px 0; } dl.info dd { margin:0; padding:4px 0; }
.layout { display:flex; gap:24px; } .sidenav { width:200px; flex:none; background:#fff; border:1px solid var(--line); padding:8px 0; align-self:flex-start; }
.sidenav a { display:block; padding:8px 16px; color:var(--fg); } .sidenav a.active { background:#e6f0fb; color:var(--accent); font-weight:600; border-left:3px solid var(--accent); }
.content { flex:1; min-width:0; }
.tabs { display:flex; gap:4px; border-bottom:1px solid var(--line); margin-bottom:16px; }
.tabs a { padding:8px 14px; color:var(--muted); } .tabs a.active { color:var(--accent); border-bottom:2px solid var(--accent); font-weight:600; }
form.inline { display:inline; }
label { display:block; font-weight:600; margin:10px 0 4px; }
input[type=text], input[type=password], input[type=datetime-local], select { padding:6px 8px; border:1px solid #b9c3cf; border-radius:4px; font:inherit; min-width:240px; }
button { font:inherit; padding:6px 14px; border-radius:4px; border:1px solid #b9c3cf; background:#fff; cursor:pointer; }
button.primary { background:var(--accent); border-color:var(--accent); color:#fff; }
button.danger { color:var(--bad); border-color:var(--bad); }
button.link { border:none; background:none; padding:0; color:var(--accent); }
button:disabled { opacity:.55; cursor:not-allowed; }
a.button { display:inline-block; padding:3px 10px; border-radius:4px; border:1px solid var(--accent); color:var(--accent); text-decoration:none; white-space:nowrap; }
form.filters { margin:8px 0; } form.filters label { display:inline; margin:0 4px 0 0; } form.filters input, form.filters select { font:inherit; padding:4px 6px; }
svg.timeline a.event-marker path:hover { fill:#b42318; }
.error { color:var(--bad); background:#fdecea; border:1px solid #f5c2bd; border-radius:4px; padding:8px 12px; margin:8px 0; }
.notice { background:#e8f4ec; border:1px solid #b8dfc4; border-radius:4px; padding:8px 12px; margin:8px 0; }
.muted, .hint { color:var(--muted); }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; background:#e6f0fb; color:var(--accent); }
.badge.ok { background:#e3f3e8; color:var(--ok); } .badge.bad { background:#fdecea; color:var(--bad); } .badge.warn { background:#fff4e0; color:var(--warn); }
.bar { background:#e3e8ee; border-radius:3px; height:8px; width:160px; display:inline-block; vertical-align:middle; }
.bar > span { display:block; height:8px; background:var(--accent); border-radius:3px; }
.card { background:#fff; border:1px solid var(--line); border-radius:6px; padding:16px; margin:12px 0; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:24px; }
.picker { display:flex; gap:12px; align-items:stretch; }
.picker select { min-width:300px; height:240px; }
.picker .moves { display:flex; flex-direction:column; justify-content:center; gap:8px; }
.picker ul { list-style:none; margin:0; padding:0; width:420px; min-height:240px; background:#fff; border:1px solid #b9c3cf; border-radius:4px; }
.picker li { padding:4px 8px; border-bottom:1px solid var(--line); display:flex; gap:8px; align-items:center; }
.picker li .edit { opacity:.35; } .picker li:hover .edit, .picker li:focus-within .edit { opacity:1; }
.picker li input.rename { min-width:0; flex:1; }
.picker li .obj { overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
form#sign-in button, form.sign-in button { margin-left:8px; }
input + button, select + button { margin-left:6px; }
button.bang { color:#fff; background:var(--bad); border-color:var(--bad); border-radius:50%; width:22px; height:22px; padding:0; font-weight:700; }
dialog { border:1px solid var(--line); border-radius:6px; padding:20px; max-width:560px; }
dialog::backdrop { background:rgba(20,33,46,.45); }
svg.timeline { background:#fff; border:1px solid var(--line); border-radius:6px; }
pre { white-space:pre-wrap; }
"#;

const JS: &str = r#"
// Dialogs: a button with data-open shows the <dialog> it names (after the form it
// belongs to is valid); data-close closes the dialog around it.
document.addEventListener('click', (ev) => {
  const open = ev.target.closest('[data-open]');
  if (open) {
    const form = open.form;
    if (form && !form.reportValidity()) return;
    const dlg = document.getElementById(open.dataset.open);
    const at = document.getElementById('at');
    const tz = document.getElementById('tz');
    const zone = tz && tz.selectedOptions[0] ? ' (' + tz.selectedOptions[0].text + ')' : '';
    dlg.querySelectorAll('[data-echo=at]').forEach(n => n.textContent = at ? at.value.replace('T', ' ') + zone : '');
    dlg.showModal();
  }
  const close = ev.target.closest('[data-close]');
  if (close) close.closest('dialog').close();
  // "Latest restorable time" puts the window's end (or now) into the time field.
  const set = ev.target.closest('[data-set-ms]');
  if (set && window.lifeboatTime) {
    const at = document.getElementById('at');
    at.value = window.lifeboatTime.format(+set.dataset.setMs);
    at.dispatchEvent(new Event('input'));
  }
});

// Progress without a reload: an element with data-poll fetches that JSON every second
// and copies `fields` into the elements bound to them; when `version` changes (a new
// state or a new table) the page reloads to show the new actions; `done` stops polling.
document.querySelectorAll('[data-poll]').forEach((el) => {
  const tick = async () => {
    try {
      const r = await fetch(el.dataset.poll, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (r.status === 401) { location.href = '/console/sign-in'; return; }
      const j = await r.json();
      if (el.dataset.version !== undefined && j.version !== el.dataset.version) { location.reload(); return; }
      for (const [k, v] of Object.entries(j.fields || {})) {
        el.querySelectorAll(`[data-bind="${k}"]`).forEach(n => { n.textContent = v; });
        el.querySelectorAll(`[data-bar="${k}"]`).forEach(n => { n.style.width = v + '%'; });
      }
      if (!j.done) setTimeout(tick, 1000);
    } catch (e) { setTimeout(tick, 2000); }
  };
  setTimeout(tick, 1000);
});

// The time field: one format, YYYY-MM-DD HH:MM:SS, in the zone chosen beside it (the
// server's, UTC, or the browser's own, added here). Changing the zone rewrites the
// time for the same instant.
const at = document.getElementById('at');
const tzSel = document.getElementById('tz');
if (at && tzSel) {
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (browserZone) {
    const o = new Option('Your browser: ' + browserZone, browserZone);
    o.dataset.zone = 'browser';
    tzSel.add(o);
    if (tzSel.dataset.chosen === browserZone) o.selected = true;
  }
  const pad = (n) => String(n).padStart(2, '0');
  const offsetMinutes = (o) => { const m = /^([+-])(\d\d):(\d\d)$/.exec(o || ''); return m ? (m[1] === '-' ? -1 : 1) * (60 * +m[2] + +m[3]) : 0; };
  const kind = () => (tzSel.selectedOptions[0] && tzSel.selectedOptions[0].dataset.zone) || 'server';
  const parse = (text, k) => {
    const iso = text.trim().replace(' ', 'T');
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/.test(iso)) return NaN;
    if (k === 'browser') return Date.parse(iso);
    return Date.parse(iso + (k === 'utc' ? 'Z' : at.dataset.offset));
  };
  const format = (ms, k) => {
    if (k === 'browser') {
      const d = new Date(ms);
      return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    }
    const d = new Date(ms + (k === 'utc' ? 0 : offsetMinutes(at.dataset.offset)) * 60000);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  };
  let shown = kind();
  tzSel.addEventListener('change', () => {
    const ms = parse(at.value, shown);
    shown = kind();
    if (!isNaN(ms)) at.value = format(ms, shown);
    at.dispatchEvent(new Event('input'));
  });
  window.lifeboatTime = { instant: () => parse(at.value, kind()), format: (ms) => format(ms, kind()) };
}

// The restorable window picture follows the time field.
const svg = document.querySelector('svg.timeline');
if (at && svg) {
  const move = () => {
    const t = window.lifeboatTime ? window.lifeboatTime.instant() : NaN;
    if (isNaN(t)) return;
    const t0 = +svg.dataset.t0, t1 = +svg.dataset.t1, x0 = +svg.dataset.x0, w = +svg.dataset.w;
    const x = x0 + Math.max(0, Math.min(1, (t - t0) / (t1 - t0))) * w;
    svg.querySelectorAll('.chosen').forEach(n => { n.setAttribute('x1', x); n.setAttribute('x2', x); });
    const anchor = x < x0 + w * 0.25 ? 'start' : x > x0 + w * 0.75 ? 'end' : 'middle';
    svg.querySelectorAll('.chosen-label').forEach(n => { n.setAttribute('x', x); n.setAttribute('text-anchor', anchor); n.textContent = 'chosen ' + at.value.replace('T', ' '); });
  };
  at.addEventListener('input', move);
}

// The object picker: ">" moves the chosen objects to the selected pane, where each can
// be renamed ("Edit") or removed; the form then sends object/rename pairs in order.
const available = document.getElementById('available');
const selected = document.getElementById('selected');
function addObject(path) {
  if ([...selected.querySelectorAll('input[name=object]')].some(i => i.value === path)) return;
  const li = document.createElement('li');
  li.dataset.object = path;
  li.innerHTML = '<span class="mono obj"></span><input type="hidden" name="object">' +
    '<input type="text" name="rename" class="rename" placeholder="new name: table, or schema.table" hidden>' +
    '<button type="button" class="edit">Edit</button><button type="button" class="remove" title="Remove">×</button>';
  li.querySelector('.obj').textContent = path;
  li.querySelector('input[name=object]').value = path;
  selected.appendChild(li);
}
// A picked object leaves the Available list, and comes back when removed.
function showAvailable(path, shown) {
  [...available.options].filter(o => o.value === path).forEach(o => { o.hidden = !shown; o.selected = false; });
}
if (available && selected) {
  selected.querySelectorAll('input[name=object]').forEach(i => showAvailable(i.value, false));
  document.getElementById('add').addEventListener('click', () => {
    [...available.selectedOptions].forEach(o => { addObject(o.value); showAvailable(o.value, false); });
    // An error about the selection goes once the selection changes.
    if (selected.children.length) document.querySelectorAll('#wizard-two .picker-error').forEach(e => e.remove());
  });
  selected.addEventListener('click', (ev) => {
    const li = ev.target.closest('li');
    if (ev.target.classList.contains('edit')) {
      const r = li.querySelector('.rename'); r.hidden = false; r.focus();
    }
    if (ev.target.classList.contains('remove')) { showAvailable(li.dataset.object, true); li.remove(); }
  });
}
"#;

pub async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        CSS,
    )
}

pub async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        JS,
    )
}
