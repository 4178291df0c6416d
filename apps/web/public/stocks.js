'use strict';
// The seed's stock example ("1. 实时股票价格更新"): its priceUpdate handler, for several symbols.
// Deviations from the seed:
// - One EventSource for every symbol, /events?topic=stocks/AAPL&topic=stocks/GOOGL…, instead of
//   one /api/stocks/<symbol> stream each: over HTTP/1.1 a browser opens at most six connections
//   per host, and five streams on this page would leave other tabs of the demo waiting.
//   Each priceUpdate carries its symbol, which picks the row.
// - The seed writes to #current-price and #change-percent; with several symbols each row has its
//   own elements. Text only (textContent), as in the seed.

const DEFAULT_SYMBOLS = ['AAPL', 'GOOGL', 'MSFT', 'TSLA', 'AMZN'];
const SYMBOL_RE = /^[A-Z0-9.-]{1,12}$/;

function chosenSymbols() {
  const param = new URLSearchParams(location.search).get('symbols');
  if (!param) return DEFAULT_SYMBOLS;
  const symbols = [
    ...new Set(
      param
        .toUpperCase()
        .split(',')
        .map((s) => s.trim()),
    ),
  ].filter((s) => SYMBOL_RE.test(s));
  return symbols.length > 0 ? symbols.slice(0, 16) : DEFAULT_SYMBOLS;
}

const rows = new Map();

function addRow(symbol) {
  const card = document.createElement('article');
  card.className = 'card stock';
  card.id = `stock-${symbol}`;
  const name = document.createElement('span');
  name.className = 'symbol';
  name.textContent = symbol;
  const change = document.createElement('span');
  change.className = 'change';
  change.textContent = '–';
  const price = document.createElement('span');
  price.className = 'price';
  price.textContent = '–';
  const time = document.createElement('small');
  time.textContent = 'waiting for the first update…';
  card.append(name, change, price, time);
  document.getElementById('stocks').append(card);
  rows.set(symbol, { card, price, change, time, last: undefined });
}

const symbols = chosenSymbols();
symbols.forEach(addRow);

const query = symbols.map((s) => `topic=${encodeURIComponent(`stocks/${s}`)}`).join('&');
const stockEvents = streamcast.track(new EventSource(`/events?${query}`));

stockEvents.addEventListener('priceUpdate', (event) => {
  const data = JSON.parse(event.data);
  const row = rows.get(data.symbol);
  if (!row) return;
  const price = Number(data.price);
  const change = Number(data.changePercent);

  row.price.textContent = data.price;
  row.change.textContent = `${change > 0 ? '▲ +' : change < 0 ? '▼ ' : ''}${data.changePercent}%`;
  row.change.classList.toggle('up', change > 0);
  row.change.classList.toggle('down', change < 0);

  // Flash by the direction of this tick (the colour of the change is since the open).
  if (row.last !== undefined && price !== row.last) {
    row.price.classList.remove('tick-up', 'tick-down');
    void row.price.offsetWidth; // restart the animation
    row.price.classList.add(price > row.last ? 'tick-up' : 'tick-down');
  }
  row.last = price;
  row.time.textContent = `updated ${new Date().toLocaleTimeString()}`;
});
