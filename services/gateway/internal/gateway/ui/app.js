// pgfleet status page: polls /health and draws one card per service, green when SERVING, red
// otherwise; with a token of role admin or service (typed in, kept in this tab's
// sessionStorage) it polls /monitoring/database too and adds each database's details. DOM
// nodes are built with textContent only (no HTML from the answers), and nothing runs inline,
// as the Content-Security-Policy demands.
'use strict';

const REFRESH_MS = 2000;
const ORDER = ['gateway', 'stock', 'portfolio', 'interview'];
const MAX_LOCKS = 8;

const grid = document.getElementById('services');
const summary = document.getElementById('summary');
const updated = document.getElementById('updated');
const tokenInput = document.getElementById('token');
const note = document.getElementById('monitoring');
const TOKEN_KEY = 'pgfleet.monitoringToken';

// getJSON returns the status and the parsed body; 503 answers of /health and
// /monitoring/database carry one too, and so do 401 and 403.
async function getJSON(url, token) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const resp = await fetch(url, { cache: 'no-store', headers });
  return { status: resp.status, body: await resp.json() };
}

// databases returns /monitoring/database's document, or {} without a token or when the
// token is refused, saying so next to the token field.
async function databases() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    note.className = 'note';
    note.textContent = 'showing health only';
    return {};
  }
  const { status, body } = await getJSON('monitoring/database', token);
  if (status === 401 || status === 403) {
    note.className = 'note refused';
    note.textContent = `token refused (${status}): ${body.message || ''}`;
    return {};
  }
  note.className = 'note';
  note.textContent = 'showing database details';
  return body;
}

function useToken() {
  const token = tokenInput.value.trim().replace(/^bearer\s+/i, '');
  tokenInput.value = '';
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  refresh(false);
}

document.getElementById('use-token').addEventListener('click', useToken);
tokenInput.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') useToken(); });
document.getElementById('forget-token').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  refresh(false);
});

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

// ms renders a protojson Duration ("0.001234s") in milliseconds.
function ms(duration) {
  if (typeof duration !== 'string') return '–';
  const seconds = parseFloat(duration);
  return Number.isFinite(seconds) ? (seconds * 1000).toFixed(1) + ' ms' : '–';
}

function ordered(names) {
  const rank = (n) => (ORDER.indexOf(n) === -1 ? ORDER.length : ORDER.indexOf(n));
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function addRow(dl, term, value) {
  dl.append(el('dt', '', term), el('dd', '', value));
}

function databaseDetails(card, entry) {
  if (!entry) return;
  if (entry.error) {
    card.append(el('p', 'error', 'monitoring: ' + entry.error.message));
    return;
  }
  const st = entry.status || {};
  const pool = st.pool || {};
  const dl = el('dl');
  addRow(dl, 'database', (st.health || 'HEALTH_UNSPECIFIED').replace('HEALTH_', ''));
  addRow(dl, 'ping', ms(st.response_time));
  addRow(dl, 'pool', `${pool.total_conns ?? 0} total / ${pool.idle_conns ?? 0} idle / ` +
    `${pool.acquired_conns ?? 0} acquired / ${pool.max_conns ?? 0} max`);
  if (st.server_version) addRow(dl, 'server', 'PostgreSQL ' + st.server_version);
  const locks = st.locks || [];
  const waiting = locks.filter((l) => !l.granted).length;
  addRow(dl, 'locks', locks.length === 0 ? 'none' : `${locks.length - waiting} held, ${waiting} waiting`);
  if (st.retry) addRow(dl, 'breaker', st.retry.breaker_state || '–');
  card.append(dl);
  if (st.error) card.append(el('p', 'error', st.error));
  if (locks.length > 0) {
    const list = el('ul', 'locks');
    for (const l of locks.slice(0, MAX_LOCKS)) {
      const mode = (l.mode || '').replace('LOCK_MODE_', '').toLowerCase();
      list.append(el('li', l.granted ? '' : 'waiting',
        `${l.resource} ${mode} ${l.granted ? 'held' : 'waiting'} (pid ${l.pid})`));
    }
    if (locks.length > MAX_LOCKS) list.append(el('li', '', `… ${locks.length - MAX_LOCKS} more`));
    card.append(list);
  }
}

function render(health, databases) {
  const services = health.services || {};
  const cards = ordered(Object.keys(services)).map((name) => {
    const state = services[name];
    const card = el('section', state === 'SERVING' ? 'card up' : 'card down');
    card.dataset.service = name;
    card.dataset.health = state;
    const title = el('h2', '', name);
    title.append(el('span', 'state', state));
    card.append(title);
    const err = (health.errors || {})[name];
    if (err) card.append(el('p', 'error', err));
    if (name === 'gateway') {
      const upstreams = Object.keys(services).filter((n) => n !== 'gateway');
      const dl = el('dl');
      addRow(dl, 'upstreams', `${upstreams.filter((n) => services[n] === 'SERVING').length} of ${upstreams.length} SERVING`);
      card.append(dl);
    }
    databaseDetails(card, databases[name]);
    return card;
  });
  grid.replaceChildren(...cards);
  summary.dataset.status = health.status;
  summary.textContent = health.status === 'SERVING'
    ? 'all services SERVING'
    : 'not serving: ' + (health.failing || []).join(', ');
}

// refresh redraws the page now; again is false for a redraw on the user's request, which
// keeps the one polling timer.
async function refresh(again = true) {
  try {
    const [health, dbs] = await Promise.all([getJSON('health').then((r) => r.body), databases()]);
    render(health, dbs);
    updated.textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (err) {
    // The gateway itself is down or answered garbage: every card is stale, so every card is red.
    for (const card of grid.querySelectorAll('.card')) {
      card.className = 'card down';
      card.dataset.health = 'UNREACHABLE';
      const state = card.querySelector('.state');
      if (state) state.textContent = 'UNREACHABLE';
    }
    summary.dataset.status = 'UNREACHABLE';
    summary.textContent = 'gateway unreachable: ' + err.message;
  } finally {
    if (again) setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
