'use strict';
// The event inspector: not from the seed. Everything from the stream is written with textContent.
//
// EventSource reports only the event types a page listens for (`message` aside), so the
// inspector listens for every type of the demo's feeds, plus the types typed in "Other event
// types". Query parameters preselect it: inspector.html?topic=news&topic=chat&event=headline
// (&lastEventId=<id>) connects at once.

const DEMO_TOPICS = [
  'events',
  'stocks/AAPL',
  'stocks/GOOGL',
  'stocks/MSFT',
  'stocks/TSLA',
  'stocks/AMZN',
  'blog',
  'chat',
  'matches/123',
  'matches/456',
  'matches/789',
  'system/monitoring',
  'social',
];
const DEFAULT_TOPICS = ['stocks/AAPL', 'chat', 'social'];
const DEMO_EVENTS = [
  'message',
  'priceUpdate',
  'newPost',
  'postUpdate',
  'progress',
  'complete',
  'failed',
  'new-message',
  'user-joined',
  'user-left',
  'scoreUpdate',
  'matchStatus',
  'matchEvent',
  'cpuUpdate',
  'memoryUpdate',
  'newLike',
  'newComment',
];
/** What each reset reason means for the events that follow (docs/api.md, "API"). */
const RESET_REASONS = {
  'history-trimmed':
    'Events after the cursor were trimmed from history: these topics continue live from here, without them.',
  'history-lost':
    'The history is not the one the cursor came from (Redis restarted empty, or the gateway of the ' +
    'embedded engine restarted): what the new history holds follows, then live events.',
  'cursor-unknown': 'The cursor cannot be placed: these topics continue live from here.',
};
const TOPIC_RE = /^[A-Za-z0-9_\-.:/]{1,200}$/;
const EVENT_RE = /^[A-Za-z0-9_\-.:]{1,64}$/;
const MAX_ROWS = 500;

const $ = (id) => document.getElementById(id);
const topicList = $('topic-list');
const otherTopics = $('other-topics');
const extraEvents = $('extra-events');
const idInput = $('last-event-id');
const resume = $('resume');
const connectButton = $('connect');
const disconnectButton = $('disconnect');
const rows = $('events');

let source = null;
let lastId = '';
/** The topics that `lastId` is a cursor for; null when the id was typed in. */
let idTopicsKey = null;
let counts = { events: 0, reconnects: 0, resets: 0 };

const list = (text) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

// Topic checkboxes, and the query parameters.
const params = new URLSearchParams(location.search);
const wantedTopics = params
  .getAll('topic')
  .flatMap(list)
  .filter((t) => TOPIC_RE.test(t));
const chosen = new Set(wantedTopics.length > 0 ? wantedTopics : DEFAULT_TOPICS);
for (const topic of DEMO_TOPICS) {
  const label = document.createElement('label');
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.value = topic;
  box.checked = chosen.has(topic);
  label.append(box, ` ${topic}`);
  topicList.append(label);
}
otherTopics.value = [...chosen].filter((t) => !DEMO_TOPICS.includes(t)).join(', ');
extraEvents.value = params.getAll('event').flatMap(list).join(', ');
if (params.get('lastEventId')) idInput.value = params.get('lastEventId');

function selectedTopics() {
  const boxes = [...topicList.querySelectorAll('input:checked')].map((b) => b.value);
  return [...new Set([...boxes, ...list(otherTopics.value)])];
}

function time() {
  return (
    new Date().toLocaleTimeString([], { hour12: false }) +
    `.${String(Date.now() % 1000).padStart(3, '0')}`
  );
}

function addRow(cells, className) {
  const tr = document.createElement('tr');
  if (className) tr.className = className;
  for (const [text, cls, span] of cells) {
    const td = document.createElement('td');
    td.className = cls;
    td.textContent = text;
    if (span) td.colSpan = span;
    tr.append(td);
  }
  rows.prepend(tr);
  while (rows.children.length > MAX_ROWS) rows.lastElementChild.remove();
}

/** A line about the connection itself (not an event). */
function note(text) {
  addRow(
    [
      [time(), 'time'],
      [text, 'note', 3],
    ],
    'sys',
  );
}

function updateStats() {
  $('event-count').textContent = String(counts.events);
  $('reconnect-count').textContent = String(counts.reconnects);
  $('reset-count').textContent = String(counts.resets);
}

function onEvent(event, topicsKey) {
  if (event.lastEventId) {
    lastId = event.lastEventId;
    idTopicsKey = topicsKey;
    idInput.value = lastId;
  }
  counts.events += 1;
  updateStats();
  addRow([
    [time(), 'time'],
    [event.type, 'event'],
    [event.lastEventId || '', 'id'],
    [event.data, 'data'],
  ]);
}

function onReset(event, topicsKey) {
  onEvent(event, topicsKey);
  rows.firstElementChild.classList.add('reset');
  counts.resets += 1;
  updateStats();
  let detail = { topics: [], reason: 'unknown' };
  try {
    detail = JSON.parse(event.data);
  } catch {
    // shown as it came, in the table
  }
  const notice = $('reset-notice');
  notice.replaceChildren();
  const title = document.createElement('strong');
  title.textContent = `reset at ${time()}: `;
  const text = document.createElement('span');
  text.textContent = `${(detail.topics || []).join(', ')} (${detail.reason}). ${
    RESET_REASONS[detail.reason] || 'The stream could not resume these topics from the cursor.'
  }`;
  notice.append(title, text);
  notice.hidden = false;
}

function connect() {
  if (source) return;
  const topics = selectedTopics();
  const bad = topics.find((t) => !TOPIC_RE.test(t));
  if (topics.length === 0 || bad) {
    note(bad ? `not a topic: ${bad}` : 'choose at least one topic');
    return;
  }
  const topicsKey = [...topics].sort().join('\n');
  const typed = idInput.value.trim();
  if (typed !== lastId) idTopicsKey = null; // typed in by hand: use as it is
  let from = resume.checked ? typed : '';
  if (from && idTopicsKey !== null && idTopicsKey !== topicsKey) {
    // A cursor covers the topics it was made for, by position: another set would misread it.
    note('the topics changed since that id: starting live');
    from = '';
  }
  const url = `/events?${topics.map((t) => `topic=${encodeURIComponent(t)}`).join('&')}`;
  // The first connection resumes with lastEventId; the browser's own reconnections send the
  // Last-Event-ID header.
  const es = new EventSource(from ? `${url}&lastEventId=${encodeURIComponent(from)}` : url);
  source = es;
  streamcast.track(es);
  $('stream-url').textContent = url;
  connectButton.disabled = true;
  disconnectButton.disabled = false;

  let opened = false;
  let open = false;
  es.addEventListener('open', () => {
    if (!opened) note(from ? `connected: resuming after ${from}` : 'connected: live from now');
    else {
      counts.reconnects += 1;
      updateStats();
      note(`reconnected by the browser with Last-Event-ID ${lastId || '(none)'}`);
    }
    opened = true;
    open = true;
  });
  es.addEventListener('error', () => {
    if (source !== es) return;
    if (es.readyState === EventSource.CLOSED) {
      note('the browser gave up on this stream');
      open = false;
      source = null;
      connectButton.disabled = false;
      disconnectButton.disabled = true;
    } else if (open) {
      note('connection lost: the browser reconnects by itself');
      open = false;
    }
  });
  const types = new Set([
    ...DEMO_EVENTS,
    ...list(extraEvents.value).filter((t) => EVENT_RE.test(t)),
  ]);
  for (const type of types) es.addEventListener(type, (event) => onEvent(event, topicsKey));
  es.addEventListener('reset', (event) => onReset(event, topicsKey));
}

function disconnect() {
  if (!source) return;
  source.close();
  source = null;
  note(`disconnected${lastId ? `: last id ${lastId}` : ''}`);
  connectButton.disabled = false;
  disconnectButton.disabled = true;
}

connectButton.addEventListener('click', connect);
disconnectButton.addEventListener('click', disconnect);
$('clear').addEventListener('click', () => {
  rows.replaceChildren();
  counts = { events: 0, reconnects: 0, resets: 0 };
  updateStats();
  $('reset-notice').hidden = true;
});

if (wantedTopics.length > 0) connect();
