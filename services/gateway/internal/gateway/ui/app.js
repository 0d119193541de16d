// pgfleet status page: draws one card per service, green when SERVING, red otherwise. Without
// a token it polls /health. With a token of role admin or service (typed in, kept in this
// tab's sessionStorage) it polls nothing: an EventSource on /monitoring/database:watch gets
// /health's report, /monitoring/database's document and the gateway's recent samples pushed
// whenever they change (the gateway looks every 2 s), adds each database's details (its read
// replicas and where reads went among them) and draws each service's recent samples as small
// SVG charts. DOM nodes are built with textContent
// and attributes only (no HTML from the answers), and nothing runs or is styled inline, as
// the Content-Security-Policy demands.
'use strict';

const REFRESH_MS = 2000; // /health's poll without a token; the stream's retry after a refusal
const ORDER = ['gateway', 'stock', 'portfolio', 'interview'];
const MAX_LOCKS = 8;

const grid = document.getElementById('services');
const recentSection = document.getElementById('recent');
const charts = document.getElementById('charts');
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

// refused says in the note next to the token field why the stream was refused: EventSource
// does not tell, so the page asks /monitoring/database once with the token in its header.
// It returns whether the token itself was refused (401, 403), not the gateway busy.
async function refused(token) {
  try {
    const { status, body } = await getJSON('monitoring/database', token);
    if (status === 401 || status === 403) {
      note.className = 'note refused';
      note.textContent = `token refused (${status}): ${body.message || ''}`;
      return true;
    }
  } catch (err) {
    // the gateway is unreachable: the stream's own retry covers it
  }
  return false;
}
function useToken() {
  const token = tokenInput.value.trim().replace(/^bearer\s+/i, '');
  tokenInput.value = '';
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  start();
}

document.getElementById('use-token').addEventListener('click', useToken);
tokenInput.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') useToken(); });
document.getElementById('forget-token').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  start();
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
  const replicas = replicaRows(dl, st);
  card.append(dl);
  if (replicas) card.append(replicas);
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

// count reads an int64, which protojson writes as a string.
function count(v) {
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

// seconds renders a protojson Duration of any size ("0.0012s", "10s") as latency does.
function seconds(duration) {
  const v = typeof duration === 'string' ? parseFloat(duration) : NaN;
  return Number.isFinite(v) ? latency(v) : '–';
}

// bytes renders a WAL distance.
function bytes(v) {
  const n = count(v);
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' kB';
  return (n / (1024 * 1024)).toFixed(1) + ' MB';
}

// replicaState is a replica's state as the page names it: usable (serves reads), lagging
// (a standby beyond MAX_REPLICA_LAG), down (unreachable or not in recovery) or unchecked.
function replicaState(r) {
  if (r.usable) return 'usable';
  if (r.up) return 'lagging';
  return r.check_time ? 'down' : 'unchecked';
}

// replicaRows adds the service's read replicas (DatabaseStatus.replicas) and where its
// replica-safe reads went (DatabaseStatus.reads) to dl, and returns the list of replicas, one
// item each, or null when it has none (it then counts no reads). A service that reports no
// reads (older than read routing) gets neither.
function replicaRows(dl, st) {
  const reads = st.reads || [];
  if (reads.length === 0) return null;
  const replicas = st.replicas || [];
  if (replicas.length === 0) {
    addRow(dl, 'replicas', 'none: every read on the primary');
    return null;
  }
  const usable = replicas.filter((r) => r.usable).length;
  addRow(dl, 'replicas', `${usable} of ${replicas.length} usable (max lag ${seconds(st.max_replica_lag)})`);
  const onReplica = reads.filter((r) => r.target === 'replica').reduce((sum, r) => sum + count(r.count), 0);
  const fallbacks = reads.filter((r) => r.target === 'primary' && count(r.count) > 0);
  const onPrimary = fallbacks.reduce((sum, r) => sum + count(r.count), 0);
  let text = `${onReplica} on replicas, ${onPrimary} on the primary`;
  if (fallbacks.length > 0) {
    text += ' (' + fallbacks.map((r) => `${r.reason.replace('_', ' ')} ${count(r.count)}`).join(', ') + ')';
  }
  addRow(dl, 'reads', text);
  const list = el('ul', 'replicas');
  for (const r of replicas) {
    const state = replicaState(r);
    const lag = r.lag === undefined ? 'lag unknown' : `lag ${seconds(r.lag)} (${bytes(r.lag_bytes)})`;
    const item = el('li', state, `${r.replica} ${state}, ${lag}, ${count(r.reads)} reads`);
    item.dataset.replica = r.replica;
    item.dataset.state = state;
    list.append(item);
  }
  return list;
}

// The charts of a service's recent samples (DatabaseStatus.recent): one per figure, each with
// its latest value and the top of its axis.
const SVG = 'http://www.w3.org/2000/svg';
const RING = 90; // samples a service keeps: the x axis spans 90 sampling intervals
const WIDTH = 120;
const HEIGHT = 36;
const CHARTS = [
  { key: 'calls_per_second', title: 'calls/s', label: 'calls per second', format: rate },
  { key: 'p99_seconds', title: 'p99 latency', label: 'p99 latency', format: latency },
  { key: 'error_ratio', title: 'server errors', label: 'share of calls ended by a server error', format: percent, ratio: true },
  { key: 'pool_use', title: 'pool use', label: 'pool connections in use', format: percent, ratio: true },
];

function rate(v) {
  return (v < 10 ? v.toFixed(1) : Math.round(v).toString()) + '/s';
}

function latency(v) {
  const msec = v * 1000;
  if (msec === 0) return '0 ms';
  if (msec < 1) return msec.toFixed(2) + ' ms';
  if (msec < 10) return msec.toFixed(1) + ' ms';
  if (msec < 1000) return Math.round(msec) + ' ms';
  return v.toFixed(2) + ' s';
}

function percent(v) {
  const p = v * 100;
  return (p === 0 || p >= 10 ? Math.round(p).toString() : p.toFixed(1)) + '%';
}

function timespan(msec) {
  const secs = Math.round(msec / 1000);
  return secs < 120 ? `${secs} s` : `${Math.round(secs / 60)} min`;
}

// axisTop rounds a positive maximum up to 1, 2 or 5 times a power of ten, so the axis reads
// well; ratios top out at 100%.
function axisTop(max, ratio) {
  if (!(max > 0)) return ratio ? 0.01 : 1;
  const p = 10 ** Math.floor(Math.log10(max));
  const top = [1, 2, 5, 10].map((m) => m * p).find((t) => t >= max * (1 - 1e-9));
  return ratio ? Math.min(top, 1) : top;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function chart(service, spec, samples) {
  const times = samples.map((s) => Date.parse(s.time));
  const values = samples.map((s) => Number(s[spec.key]) || 0);
  const top = axisTop(Math.max(...values), spec.ratio);
  const last = values[values.length - 1];
  const newest = times[times.length - 1];
  // The x axis ends at the newest sample and spans RING intervals (15 minutes at 10 s).
  const step = times.length > 1 ? newest - times[times.length - 2] : 10000;
  const span = Math.max(step * RING, 1);
  const points = times.map((t, i) => {
    const x = Math.max(0, WIDTH - ((newest - t) / span) * WIDTH);
    const y = HEIGHT - 1 - (Math.min(values[i], top) / top) * (HEIGHT - 2);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const peak = Math.max(...values);
  const label = `${service} ${spec.label} over the last ${timespan(newest - times[0])}: ` +
    `now ${spec.format(last)}, peak ${spec.format(peak)}, axis max ${spec.format(top)}, ${samples.length} samples`;

  const figure = el('figure', 'spark');
  figure.dataset.metric = spec.key;
  const caption = el('figcaption');
  caption.append(el('span', 'name', spec.title), el('span', 'now', spec.format(last)));
  const svg = svgEl('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label });
  const title = svgEl('title', {});
  title.textContent = label;
  const first = points[0].split(',')[0];
  const lastX = points[points.length - 1].split(',')[0];
  svg.append(
    title,
    svgEl('line', { class: 'axis', x1: 0, y1: HEIGHT - 0.5, x2: WIDTH, y2: HEIGHT - 0.5, 'vector-effect': 'non-scaling-stroke' }),
    svgEl('polygon', { class: 'area', points: `${first},${HEIGHT} ${points.join(' ')} ${lastX},${HEIGHT}` }),
    svgEl('polyline', { class: 'line', points: points.join(' '), 'vector-effect': 'non-scaling-stroke' }),
  );
  figure.append(caption, svg, el('span', 'top', 'max ' + spec.format(top)));
  return figure;
}

// renderRecent draws a row of charts for the gateway (its HTTP requests; it has no pool) and
// for each service whose DatabaseMonitor answered; without a token the section is hidden.
function renderRecent(databases, gateway) {
  const sources = {};
  if (gateway) sources.gateway = { samples: gateway, pool: false };
  for (const [name, entry] of Object.entries(databases)) {
    sources[name] = entry.error
      ? { error: entry.error.message }
      : { samples: (entry.status && entry.status.recent) || [], pool: true };
  }
  const names = ordered(Object.keys(sources));
  recentSection.hidden = names.length === 0;
  const rows = names.map((name) => {
    const src = sources[name];
    const row = el('div', 'chart-row');
    row.dataset.service = name;
    row.append(el('h3', '', name));
    if (src.error) {
      row.append(el('p', 'error', 'no samples: ' + src.error));
    } else if (src.samples.length === 0) {
      row.append(el('p', 'note', 'no sample yet: the first comes one interval after the start'));
    } else {
      const specs = CHARTS.filter((spec) => src.pool || spec.key !== 'pool_use');
      row.append(...specs.map((spec) => chart(name, spec, src.samples)));
    }
    return row;
  });
  charts.replaceChildren(...rows);
}

function render(health, { dbs: databases, gateway }) {
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
  renderRecent(databases, gateway);
  summary.dataset.status = health.status;
  summary.textContent = health.status === 'SERVING'
    ? 'all services SERVING'
    : 'not serving: ' + (health.failing || []).join(', ');
}

// unreachable marks every card stale: the gateway is down or answered garbage.
function unreachable(reason) {
  for (const card of grid.querySelectorAll('.card')) {
    card.className = 'card down';
    card.dataset.health = 'UNREACHABLE';
    const state = card.querySelector('.state');
    if (state) state.textContent = 'UNREACHABLE';
  }
  summary.dataset.status = 'UNREACHABLE';
  summary.textContent = 'gateway unreachable: ' + reason;
}

// What the page runs: a poll of /health without a token, the stream with one. generation
// tells a callback of a replaced one to stop.
let generation = 0;
let stream = null;
let timer = null;

function start() {
  generation++;
  if (stream) stream.close();
  stream = null;
  clearTimeout(timer);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    watch(token, generation);
  } else {
    note.className = 'note';
    note.textContent = 'showing health only';
    poll(generation);
  }
}

// poll redraws from /health every REFRESH_MS.
async function poll(gen) {
  try {
    const { body } = await getJSON('health');
    if (gen !== generation) return;
    render(body, { dbs: {}, gateway: null });
    updated.textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (err) {
    if (gen === generation) unreachable(err.message);
  } finally {
    if (gen === generation) timer = setTimeout(() => poll(gen), REFRESH_MS);
  }
}

// watch follows /monitoring/database:watch: events health (/health's report), the default
// one (/monitoring/database's document) and recent (/monitoring/recent's). EventSource
// cannot send headers, so the token goes as access_token (the gateway takes it on ...:watch
// routes only, and logs it nowhere). When the connection drops, EventSource reconnects by
// itself; when the gateway refuses the stream (an HTTP error), it stops, and so does the page
// if the token was refused, else it tries again.
function watch(token, gen) {
  const es = new EventSource('monitoring/database:watch?access_token=' + encodeURIComponent(token));
  stream = es;
  const state = { health: null, dbs: {}, gateway: null };
  const draw = () => {
    if (gen !== generation || !state.health) return;
    render(state.health, state);
    updated.textContent = 'updated ' + new Date().toLocaleTimeString() + ' (live)';
  };
  es.addEventListener('health', (ev) => { state.health = JSON.parse(ev.data); draw(); });
  es.addEventListener('recent', (ev) => { state.gateway = JSON.parse(ev.data).recent; draw(); });
  es.addEventListener('message', (ev) => {
    state.dbs = JSON.parse(ev.data);
    note.className = 'note';
    note.textContent = 'showing database details, live';
    draw();
  });
  es.addEventListener('error', async (ev) => {
    if (gen !== generation) return;
    if (ev.data !== undefined) { // the gateway's own "error" event: it ended the stream (draining)
      note.className = 'note';
      note.textContent = 'stream ended: ' + (JSON.parse(ev.data).message || '') + '; reconnecting';
      return;
    }
    if (es.readyState !== EventSource.CLOSED) { // dropped: EventSource reconnects
      unreachable('connection lost, reconnecting');
      return;
    }
    if (await refused(token)) {
      if (gen !== generation) return;
      stream = null;
      poll(gen); // health only
      return;
    }
    if (gen === generation) timer = setTimeout(() => { if (gen === generation) watch(token, gen); }, REFRESH_MS);
  });
}

start();
