// pgfleet status page: polls /health and /monitoring/database and draws one card per service,
// green when SERVING, red otherwise. DOM nodes are built with textContent only (no HTML from
// the answers), and nothing runs inline, as the Content-Security-Policy demands.
'use strict';

const REFRESH_MS = 2000;
const ORDER = ['gateway', 'stock', 'portfolio', 'interview'];
const MAX_LOCKS = 8;

const grid = document.getElementById('services');
const summary = document.getElementById('summary');
const updated = document.getElementById('updated');

// getJSON returns the parsed body; 503 answers of /health and /monitoring/database carry one too.
async function getJSON(url) {
  const resp = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
  return resp.json();
}

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

async function refresh() {
  try {
    const [health, databases] = await Promise.all([getJSON('health'), getJSON('monitoring/database')]);
    render(health, databases);
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
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
