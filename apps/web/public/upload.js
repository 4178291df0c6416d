'use strict';
// The seed's upload example ("3. 文件上传进度跟踪"): uploadFile(file) as the seed wrote it, with
// these deviations:
// - The seed subscribes to /api/upload-progress/${file.lastModified} but never tells the server
//   that id; the form carries it as the field `fileId`, before `file` (API.md).
// - The POST waits for the progress stream to be open: a subscription starts live, and a small
//   file could be received, processed and reported before a stream opened at the same moment is
//   listening. The seed posts at once.
// - `complete` shows the results in the page (with textContent) instead of alert(); `failed` and
//   a refused POST are shown too (the seed ignores both), and the stream is closed after either.
// - The bar is also set to 100% on `complete`.

const form = document.getElementById('upload-form');
const input = document.getElementById('file-input');
const button = document.getElementById('upload-button');
const statusText = document.getElementById('upload-status');
const progressBar = document.getElementById('progress-bar');

let progressSource = null;

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const file = input.files && input.files[0];
  if (file) uploadFile(file);
});

function setProgress(percent) {
  const value = Math.max(0, Math.min(100, Math.round(Number(percent) || 0)));
  progressBar.style.width = `${value}%`;
  progressBar.textContent = `${value}%`;
  progressBar.parentElement.setAttribute('aria-valuenow', String(value));
}

function finish(source) {
  source.close();
  streamcast.untrack(source);
  if (progressSource === source) progressSource = null;
  button.disabled = false;
}

function uploadFile(file) {
  if (progressSource) finish(progressSource);
  const fileId = String(file.lastModified);
  const formData = new FormData();
  formData.append('fileId', fileId); // demo: the seed never sends the id it subscribes to
  formData.append('file', file);

  setProgress(0);
  progressBar.classList.remove('done', 'failed');
  statusText.textContent = `Connecting for ${file.name}…`;
  button.disabled = true;

  // 创建上传进度事件监听
  const source = new EventSource(`/api/upload-progress/${fileId}`);
  progressSource = source;
  streamcast.track(source);

  source.addEventListener('progress', (event) => {
    const progress = JSON.parse(event.data);
    setProgress(progress.percent);
    const bytes =
      typeof progress.bytes === 'number' && typeof progress.totalBytes === 'number'
        ? ` (${formatValue('size', progress.bytes)} of ${formatValue('size', progress.totalBytes)})`
        : '';
    statusText.textContent = `${file.name}: ${progress.status || 'uploading'}…${bytes}`;
  });

  source.addEventListener('complete', (event) => {
    const result = JSON.parse(event.data);
    setProgress(100);
    progressBar.classList.add('done');
    statusText.textContent = `文件上传成功: ${result.filename}`;
    showResult(result);
    finish(source);
  });

  source.addEventListener('failed', (event) => {
    const failure = JSON.parse(event.data);
    progressBar.classList.add('failed');
    statusText.textContent = `${file.name}: processing failed: ${failure.reason}`;
    finish(source);
  });

  // 发起上传请求, once the stream listens (see above)
  source.addEventListener(
    'open',
    () => {
      statusText.textContent = `Uploading ${file.name}…`;
      fetch('/api/upload', { method: 'POST', body: formData })
        .then(async (response) => {
          if (response.ok) return;
          let message = `${response.status} ${response.statusText}`;
          try {
            const body = await response.json();
            if (body && body.error) message = `${body.error.code}: ${body.error.message}`;
          } catch {
            // not JSON: keep the status line
          }
          throw new Error(message);
        })
        .catch((err) => {
          if (progressSource !== source) return;
          progressBar.classList.add('failed');
          statusText.textContent = `Upload refused: ${err.message}`;
          finish(source);
        });
    },
    { once: true },
  );
}

/** Fields of `complete` that repeat the progress, not results. */
const SKIPPED = new Set(['percent', 'status', 'bytes', 'totalBytes']);
const LABELS = {
  filename: 'file',
  fileId: 'file id',
  size: 'size',
  mime: 'type',
  sha256: 'SHA-256',
  lines: 'lines',
  words: 'words',
  width: 'width',
  height: 'height',
};

function formatValue(key, value) {
  if (key === 'size' && typeof value === 'number') {
    if (value >= 1024 * 1024) return `${(value / 1024 / 1024).toFixed(1)} MiB`;
    if (value >= 1024) return `${(value / 1024).toFixed(1)} KiB`;
    return `${value} bytes`;
  }
  if ((key === 'width' || key === 'height') && typeof value === 'number') return `${value} px`;
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function showResult(result) {
  document.getElementById('results-empty')?.remove();
  const card = document.createElement('article');
  card.className = 'card upload-result';
  const title = document.createElement('h3');
  title.textContent = result.filename;
  const facts = document.createElement('dl');
  facts.className = 'facts';
  for (const [key, value] of Object.entries(result)) {
    if (value === null || value === undefined || SKIPPED.has(key)) continue;
    const dt = document.createElement('dt');
    dt.textContent = LABELS[key] || key;
    const dd = document.createElement('dd');
    dd.textContent =
      key === 'size' && typeof value === 'number' && value >= 1024
        ? `${formatValue(key, value)} (${value} bytes)`
        : formatValue(key, value);
    if (key === 'sha256') dd.className = 'mono';
    facts.append(dt, dd);
  }
  const time = document.createElement('small');
  time.textContent = `completed ${new Date().toLocaleTimeString()}`;
  card.append(title, facts, time);
  document.getElementById('results').prepend(card);
}
