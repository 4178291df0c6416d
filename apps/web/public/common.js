/*
 * Shared by every demo page: the connection-state badge (#connection-state in the header).
 * A page calls streamcast.track(source) for each EventSource it opens; the badge shows the
 * worst state among them: "live" when all are open, "connecting…" / "reconnecting…" while the
 * browser (re)connects by itself, "disconnected" once one is closed for good, "not connected"
 * when the page holds none. The badge's data-state attribute carries the same state for tests.
 */
'use strict';
(function () {
  const LABELS = {
    idle: 'not connected',
    connecting: 'connecting…',
    live: 'live',
    reconnecting: 'reconnecting…',
    closed: 'disconnected',
  };
  /** EventSource → { opened: has it ever been open } */
  const tracked = new Map();

  function state() {
    if (tracked.size === 0) return 'idle';
    let result = 'live';
    for (const [source, info] of tracked) {
      if (source.readyState === EventSource.CLOSED) return 'closed';
      if (source.readyState === EventSource.CONNECTING) {
        if (info.opened) result = 'reconnecting';
        else if (result === 'live') result = 'connecting';
      }
    }
    return result;
  }

  function render() {
    const badge = document.getElementById('connection-state');
    if (!badge) return;
    const current = state();
    if (badge.dataset.state !== current || !badge.textContent) {
      badge.dataset.state = current;
      badge.textContent = LABELS[current];
    }
  }

  /** Shows `source` in the badge; sources closed earlier are forgotten. Returns `source`. */
  function track(source) {
    for (const old of tracked.keys()) {
      if (old.readyState === EventSource.CLOSED) tracked.delete(old);
    }
    const info = { opened: false };
    tracked.set(source, info);
    source.addEventListener('open', () => {
      info.opened = true;
      render();
    });
    source.addEventListener('error', render);
    render();
    return source;
  }

  /** Forgets `source` (a page that closed it on purpose and holds no other). */
  function untrack(source) {
    tracked.delete(source);
    render();
  }

  window.streamcast = { track, untrack };
  // readyState changes without an event when a page calls close(): poll as well.
  setInterval(render, 1000);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', render);
  else render();
})();
