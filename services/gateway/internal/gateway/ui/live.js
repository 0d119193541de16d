// pgfleet live view: the latest prices of the symbols in this page's ?symbols= (comma-separated,
// AAPL and MSFT by default), pushed by GET /v1/prices:watch, and, given a portfolio id and its
// owner's token, the portfolio's value, pushed by GET /v1/portfolios/{id}:watch as prices move.
// Both are EventSource streams (server-sent events): EventSource reconnects by itself when a
// connection drops; when the gateway refuses a stream (an HTTP error, after which EventSource
// stops) the page says so and tries again a little later. DOM nodes are built with textContent
// only, as the Content-Security-Policy demands.
'use strict';

const RETRY_MS = 3000;
const params = new URLSearchParams(location.search);
const symbols = (params.get('symbols') || 'AAPL,MSFT').split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
const rows = document.querySelector('#prices tbody');
const streamNote = document.getElementById('stream');

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

// row returns the table row of symbol, made on first use.
function row(symbol) {
  let tr = rows.querySelector(`tr[data-symbol="${CSS.escape(symbol)}"]`);
  if (!tr) {
    tr = el('tr');
    tr.dataset.symbol = symbol;
    tr.append(el('td', 'symbol', symbol), el('td', 'close', '–'), el('td', 'currency', ''), el('td', 'time', ''));
    rows.append(tr);
  }
  return tr;
}

function showPrice(p) {
  const tr = row(p.symbol);
  tr.dataset.close = p.close;
  tr.querySelector('.close').textContent = p.close;
  tr.querySelector('.currency').textContent = p.currency || '';
  tr.querySelector('.time').textContent = p.time ? new Date(p.time).toLocaleString() : '';
  tr.classList.toggle('delisted', Boolean(p.delist_time));
  tr.classList.remove('flash');
  void tr.offsetWidth; // restart the highlight
  tr.classList.add('flash');
}

function clearPrice(symbol) {
  const tr = row(symbol);
  delete tr.dataset.close;
  tr.querySelector('.close').textContent = '–';
  tr.querySelector('.time').textContent = '';
}

// follow opens an EventSource on url and hands each message's JSON to onMessage; onState
// gets 'live', 'reconnecting' or 'refused'.
function follow(url, onMessage, onState) {
  let es;
  const open = () => {
    es = new EventSource(url);
    es.addEventListener('open', () => onState('live'));
    es.addEventListener('message', (ev) => { onState('live'); onMessage(JSON.parse(ev.data)); });
    es.addEventListener('error', (ev) => {
      if (ev.data !== undefined) return; // the gateway's own "error" event; the body ends next
      if (es.readyState === EventSource.CLOSED) {
        onState('refused');
        setTimeout(open, RETRY_MS);
      } else {
        onState('reconnecting');
      }
    });
  };
  open();
  return { close: () => es.close() };
}

for (const s of symbols) row(s);
follow('v1/prices:watch?symbols=' + encodeURIComponent(symbols.join(',')), (msg) => {
  for (const p of msg.prices || []) showPrice(p);
  for (const s of msg.cleared_symbols || []) clearPrice(s);
}, (state) => {
  streamNote.dataset.status = state === 'live' ? 'SERVING' : 'NOT_SERVING';
  streamNote.textContent = state === 'live' ? 'prices live' : 'prices stream ' + state;
});

let portfolioStream = null;
document.getElementById('watch-portfolio').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = document.getElementById('portfolio').value.trim();
  const tokenInput = document.getElementById('token');
  const token = tokenInput.value.trim().replace(/^bearer\s+/i, '');
  tokenInput.value = '';
  if (!/^[0-9]+$/.test(id) || !token) return;
  if (portfolioStream) portfolioStream.close();
  document.getElementById('value').hidden = false;
  document.getElementById('portfolio-id').textContent = id;
  const noteEl = document.getElementById('value-note');
  portfolioStream = follow(`v1/portfolios/${id}:watch?access_token=${encodeURIComponent(token)}`, (msg) => {
    const total = document.getElementById('total');
    total.textContent = msg.total_value ? `${msg.total_value} ${(msg.portfolio || {}).currency || ''}` : 'unknown (a price is missing)';
    total.dataset.value = msg.total_value || '';
    document.getElementById('cash').textContent = (msg.portfolio || {}).cash || '–';
    document.getElementById('positions').textContent =
      (msg.positions || []).map((p) => `${p.symbol} ${p.quantity}`).join(', ') || 'none';
  }, (state) => {
    noteEl.textContent = state === 'live' ? 'live' : state === 'refused'
      ? 'refused (another user\'s portfolio, a bad token, or none such): retrying'
      : 'reconnecting';
  });
});
