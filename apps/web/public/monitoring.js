'use strict';
// The seed's monitoring example ("系统监控面板"): its two handlers as written. The seed leaves
// updateGauge undefined; here it fills a ring gauge. The chart of the last minutes is the demo's.
const WINDOW_MS = 5 * 60 * 1000;
/** The chart spans from the first sample (at least this long ago) to now, at most WINDOW_MS. */
const MIN_SPAN_MS = 30 * 1000;
const startedAt = Date.now();
const samples = { cpu: [], memory: [] }; // [time, percent]

const monitorEvents = streamcast.track(new EventSource('/api/system/monitoring'));

monitorEvents.addEventListener('cpuUpdate', (event) => {
  const data = JSON.parse(event.data);
  updateGauge('cpu-gauge', data.usage);
  document.getElementById('cpu-text').textContent = `updated ${new Date().toLocaleTimeString()}`;
  record('cpu', data.usage);
});

monitorEvents.addEventListener('memoryUpdate', (event) => {
  const data = JSON.parse(event.data);
  updateGauge('memory-gauge', data.percentUsed);
  document.getElementById('memory-text').textContent = `${data.used} / ${data.total} GB`;
  record('memory', data.percentUsed);
});

function updateGauge(id, value) {
  const percent = Math.max(0, Math.min(100, Number(value) || 0));
  const gauge = document.getElementById(id);
  gauge.style.setProperty('--v', String(percent));
  gauge.setAttribute('aria-valuenow', String(Math.round(percent)));
  gauge.classList.toggle('warn', percent >= 70 && percent < 90);
  gauge.classList.toggle('high', percent >= 90);
  gauge.querySelector('.value').textContent = `${Math.round(percent)}%`;
}

function record(series, value) {
  const now = Date.now();
  const points = samples[series];
  points.push([now, Number(value)]);
  while (points.length > 0 && points[0][0] < now - WINDOW_MS) points.shift();
  draw();
}

const canvas = document.getElementById('history-chart');

function draw() {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (width === 0 || height === 0) return;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);

  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const left = 36;
  const right = width - 8;
  const top = 8;
  const bottom = height - 22;
  const now = Date.now();
  const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - startedAt));
  const x = (t) => left + ((t - (now - span)) / span) * (right - left);
  const y = (v) => bottom - (v / 100) * (bottom - top);

  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  ctx.strokeStyle = color('--border');
  ctx.fillStyle = color('--muted');
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const v of [0, 25, 50, 75, 100]) {
    ctx.beginPath();
    ctx.moveTo(left, Math.round(y(v)) + 0.5);
    ctx.lineTo(right, Math.round(y(v)) + 0.5);
    ctx.stroke();
    ctx.fillText(`${v}%`, left - 6, y(v));
  }
  ctx.textBaseline = 'alphabetic';
  ctx.textAlign = 'left';
  const seconds = Math.round(span / 1000);
  ctx.fillText(
    seconds < 120 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`,
    left,
    height - 6,
  );
  ctx.textAlign = 'right';
  ctx.fillText('now', right, height - 6);

  ctx.lineWidth = 2;
  ctx.lineJoin = 'round';
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, 0, right - left + 4, height);
  ctx.clip(); // points older than the span slide out on the left
  for (const [series, swatch] of [
    ['memory', '--warn'],
    ['cpu', '--accent'],
  ]) {
    const points = samples[series];
    if (points.length === 0) continue;
    ctx.strokeStyle = color(swatch);
    ctx.fillStyle = color(swatch);
    ctx.beginPath();
    points.forEach(([t, v], i) => (i === 0 ? ctx.moveTo(x(t), y(v)) : ctx.lineTo(x(t), y(v))));
    ctx.stroke();
    const [t, v] = points[points.length - 1];
    ctx.beginPath();
    ctx.arc(x(t), y(v), 3, 0, Math.PI * 2);
    ctx.fill();
  }
  ctx.restore();
}

window.addEventListener('resize', draw);
setInterval(draw, 5000); // the time axis moves on when no sample comes
draw();
