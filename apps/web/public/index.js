'use strict';
// The seed's first example ("客户端实现"): /api/events, one `message` a second.
// Deviation: the seed logs every connection error with console.error; here the header badge
// shows the connection state instead (the browser reconnects by itself).
const eventSource = streamcast.track(new EventSource('/api/events'));
let count = 0;

eventSource.onmessage = (event) => {
  const data = JSON.parse(event.data);
  updateUI(data);
};

function updateUI(data) {
  count += 1;
  document.getElementById('server-time').textContent = new Date(
    data.timestamp,
  ).toLocaleTimeString();
  document.getElementById('server-message').textContent = data.message;
  document.getElementById('tick-count').textContent = String(count);
}
