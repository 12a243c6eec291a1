// The crystalwatch live page: no framework, no CDN. State comes from /api/cameras and
// /api/alerts on every (re)connect, then follows the /ws feed of LiveEvents.
const THRESHOLD = 0.5;
const HISTORY = 240;
const SVG_NS = 'http://www.w3.org/2000/svg';

/** camera id → { camera, history: [{t,pPG}], lastPrediction, quality: {window: q}, alert, thumbnail, predictionsByFrame: Map } */
const cameras = new Map();
/** alert id → Alert */
const alerts = new Map();
/** frame id → thumbnail info (from `frame` events), so a prediction can be drawn over its own frame. */
const thumbnails = new Map();
const dirty = new Set();
let alertsDirty = true;
let renderScheduled = false;

const $ = (selector, root = document) => root.querySelector(selector);

function camera(id) {
  let state = cameras.get(id);
  if (!state) {
    state = { camera: id, history: [], quality: {}, predictionsByFrame: new Map() };
    cameras.set(id, state);
  }
  dirty.add(id);
  return state;
}

function rememberThumbnail(info) {
  thumbnails.set(info.frameId, info);
  if (thumbnails.size > 400) thumbnails.delete(thumbnails.keys().next().value);
}

function applyPrediction(prediction) {
  const state = camera(prediction.camera);
  // A late prediction (overload catch-up) is of an older frame: it is not the camera's latest.
  if (prediction.late) return;
  state.lastPrediction = prediction;
  state.history.push({ t: prediction.capturedAt, pPG: prediction.pPG });
  if (state.history.length > HISTORY) state.history.splice(0, state.history.length - HISTORY);
  state.predictionsByFrame.set(prediction.frameId, prediction);
  if (state.predictionsByFrame.size > 100) state.predictionsByFrame.delete(state.predictionsByFrame.keys().next().value);
}

function applyAlert(alert) {
  alerts.set(alert.id, alert);
  const state = camera(alert.camera);
  // A silent camera is not a PG onset: it has its own line ("check the camera"), never "stop the batch".
  if (alert.reason === 'camera-silent') {
    if (!state.silent || state.silent.id === alert.id || state.silent.startsAt <= alert.startsAt) state.silent = alert;
    alertsDirty = true;
    return;
  }
  if (!state.alert || state.alert.id === alert.id || state.alert.startsAt <= alert.startsAt) state.alert = alert;
  alertsDirty = true;
}

function applyEvent(event) {
  switch (event.type) {
    case 'prediction':
      if (event.prediction && event.prediction.camera) applyPrediction(event.prediction);
      break;
    case 'alert':
      if (event.alert && event.alert.id) applyAlert(event.alert);
      break;
    case 'quality': {
      if (!event.camera) break;
      const { type, ...rest } = event;
      camera(event.camera).quality[event.window ?? 'default'] = rest;
      break;
    }
    case 'frame': {
      if (!event.camera || !event.frameId) break;
      rememberThumbnail(event);
      camera(event.camera).thumbnail = event;
      break;
    }
    default:
      break;
  }
  scheduleRender();
}

function scheduleRender() {
  if (renderScheduled) return;
  renderScheduled = true;
  requestAnimationFrame(() => {
    renderScheduled = false;
    render();
  });
}

// --- rendering --------------------------------------------------------------

function alertState(alert) {
  if (!alert) return 'ok';
  if (alert.state === 'resolved') return 'resolved';
  return alert.acknowledgedAt ? 'acknowledged' : 'firing';
}

function fmt(value, digits = 3) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '–';
}

function cardFor(id) {
  const container = $('#cameras');
  for (const card of container.querySelectorAll('.camera')) if (card.dataset.camera === id) return card;
  const card = $('#camera-template').content.firstElementChild.cloneNode(true);
  card.dataset.camera = id;
  $('.camera-name', card).textContent = id;
  $('.ack', card).addEventListener('click', () => {
    const alert = cameras.get(id)?.alert;
    if (alert) void acknowledge(alert.id);
  });
  const cards = [...container.querySelectorAll('.camera')];
  const after = cards.find((c) => c.dataset.camera.localeCompare(id) > 0);
  container.insertBefore(card, after ?? null);
  $('#no-cameras').hidden = true;
  return card;
}

function renderCamera(state) {
  const card = cardFor(state.camera);
  const banner = $('.camera-banner', card);
  const mode = alertState(state.alert);
  banner.dataset.state = mode;
  const ack = $('.ack', banner);
  ack.hidden = mode !== 'firing';
  $('.banner-text', banner).textContent = {
    ok: 'OK — no PG',
    firing: 'PG detected — stop the batch',
    acknowledged: `PG — acknowledged${state.alert?.acknowledgedBy ? ` by ${state.alert.acknowledgedBy}` : ''}`,
    resolved: 'PG alert resolved',
  }[mode];

  const p = state.lastPrediction;
  const status = $('.camera-status', card);
  const silent = state.silent && state.silent.state === 'firing';
  const unusable = p && p.predicted === 'unusable';
  status.hidden = !silent && !unusable;
  status.dataset.state = silent ? 'silent' : 'unusable';
  status.textContent = silent
    ? `No frames since ${state.silent.evidence?.lastSeenAt ?? state.silent.startsAt} — check the camera`
    : unusable
      ? `Cannot see: last frame unusable (${p.reason ?? 'unknown reason'}); it does not count for or against PG`
      : '';
  $('.ppg', card).textContent = p ? fmt(p.pPG) : '–';
  $('.run', card).textContent = p ? p.runId : '–';
  const model = $('.model', card);
  const uncalibrated = p?.calibration?.status === 'uncalibrated';
  model.textContent = p ? `${p.model}${uncalibrated ? ' — uncalibrated' : p.calibration?.status === 'calibrated' ? ' — calibrated' : ''}` : '–';
  model.classList.toggle('uncalibrated', uncalibrated);
  model.title = uncalibrated
    ? "Fitted on simulator camera profiles, not on this camera: calibrate it on this camera's clean frames before trusting its alarms."
    : '';
  const predicted = $('.predicted', card);
  predicted.textContent = p ? p.predicted : '–';
  predicted.classList.toggle('pg', p?.predicted === 'pg');
  const windows = Object.keys(state.quality).sort((a, b) => windowSeconds(a) - windowSeconds(b));
  const q = windows.length ? state.quality[windows[0]] : undefined;
  $('.precision', card).textContent = fmt(q?.precision);
  $('.recall', card).textContent = fmt(q?.recall);
  $('.f1', card).textContent = fmt(q?.f1);
  $('.window', card).textContent = q ? `${windows[0]}${q.support != null ? ` (n=${q.support})` : ''}` : '–';
  const overload = state.overload;
  $('.skipped', card).textContent = overload ? `${overload.skipped}${overload.caughtUp ? ` (${overload.caughtUp} caught up)` : ''}` : '–';
  $('.skipped', card).title = 'Frames not classified in time under overload (classify.overload); they stay in Kafka.';
  $('.meta', card).textContent = p ? `${p.capturedAt} · ${p.model} on ${p.backend}/${p.device} · ${fmt(p.latencyMs, 0)} ms` : '';

  renderFrame(card, state);
  renderSparkline($('.sparkline', card), state.history);
}

/** "5m" → 300; unknown shapes sort last. */
function windowSeconds(w) {
  const m = /^(\d+)(s|m|h|d)?$/.exec(w);
  if (!m) return Number.MAX_SAFE_INTEGER;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] ?? 's'];
}

function renderFrame(card, state) {
  const svg = $('.frame', card);
  const image = $('.frame-image', svg);
  const tilesGroup = $('.tiles', svg);
  // Prefer the frame of the latest prediction (its tiles line up); else the latest frame seen.
  const p = state.lastPrediction;
  const own = p ? thumbnails.get(p.frameId) : undefined;
  const thumb = own ?? state.thumbnail;
  const tiles = own || !thumb ? (p?.tiles ?? []) : [];
  let width = thumb?.sourceWidth;
  let height = thumb?.sourceHeight;
  if (!width || !height) {
    width = Math.max(320, ...tiles.map((t) => t.x + t.width));
    height = Math.max(240, ...tiles.map((t) => t.y + t.height));
  }
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  for (const el of [$('.frame-bg', svg), image]) {
    el.setAttribute('width', String(width));
    el.setAttribute('height', String(height));
  }
  if (thumb?.url) {
    if (image.getAttribute('href') !== thumb.url) image.setAttribute('href', thumb.url);
  } else image.removeAttribute('href');
  tilesGroup.replaceChildren(
    ...tiles.map((t) => {
      const rect = document.createElementNS(SVG_NS, 'rect');
      rect.setAttribute('x', String(t.x));
      rect.setAttribute('y', String(t.y));
      rect.setAttribute('width', String(t.width));
      rect.setAttribute('height', String(t.height));
      rect.setAttribute('class', t.pPG >= THRESHOLD ? 'pg' : 'cex');
      const title = document.createElementNS(SVG_NS, 'title');
      title.textContent = `P(PG) ${fmt(t.pPG)}`;
      rect.append(title);
      return rect;
    }),
  );
}

function renderSparkline(canvas, history) {
  const ratio = window.devicePixelRatio || 1;
  const cssWidth = canvas.clientWidth || 300;
  const cssHeight = canvas.clientHeight || 56;
  if (canvas.width !== Math.round(cssWidth * ratio)) {
    canvas.width = Math.round(cssWidth * ratio);
    canvas.height = Math.round(cssHeight * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  const pad = 3;
  const y = (v) => pad + (1 - v) * (cssHeight - 2 * pad);
  ctx.strokeStyle = 'rgba(255,255,255,0.35)';
  ctx.setLineDash([4, 3]);
  ctx.beginPath();
  ctx.moveTo(0, y(THRESHOLD));
  ctx.lineTo(cssWidth, y(THRESHOLD));
  ctx.stroke();
  ctx.setLineDash([]);
  if (history.length === 0) return;
  // At least 60 slots wide, so the first minutes of a run are readable rather than a dot at the edge.
  const step = cssWidth / (Math.min(HISTORY, Math.max(history.length, 60)) - 1);
  const x0 = cssWidth - (history.length - 1) * step;
  ctx.strokeStyle = '#4fc3f7';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let drawing = false;
  history.forEach((h, i) => {
    if (h.pPG == null) {
      drawing = false;
      return;
    } // unusable frame: a gap, not a zero
    const px = x0 + i * step;
    if (drawing) ctx.lineTo(px, y(h.pPG));
    else ctx.moveTo(px, y(h.pPG));
    drawing = true;
  });
  ctx.stroke();
  ctx.fillStyle = '#ff5252';
  history.forEach((h, i) => {
    if (h.pPG != null && h.pPG >= THRESHOLD) ctx.fillRect(x0 + i * step - 1.5, y(h.pPG) - 1.5, 3, 3);
  });
}

function silentCameras() {
  return [...cameras.values()].filter((s) => s.silent && s.silent.state === 'firing').map((s) => s.camera);
}

function renderGlobalBanner() {
  const banner = $('#global-banner');
  const states = [...cameras.values()].filter((s) => s.alert).map((s) => ({ camera: s.camera, mode: alertState(s.alert) }));
  const firing = states.filter((s) => s.mode === 'firing');
  const acked = states.filter((s) => s.mode === 'acknowledged');
  if (firing.length) {
    banner.dataset.state = 'firing';
    banner.textContent = `PG detected on ${firing.map((s) => s.camera).join(', ')} — stop the batch`;
  } else if (silentCameras().length) {
    banner.dataset.state = 'silent';
    banner.textContent = `No frames from ${silentCameras().join(', ')} — check the camera`;
  } else if (acked.length) {
    banner.dataset.state = 'acknowledged';
    banner.textContent = `PG alert acknowledged on ${acked.map((s) => s.camera).join(', ')}`;
  } else {
    banner.dataset.state = 'ok';
    banner.textContent = 'No PG detected';
  }
}

function renderAlerts() {
  const list = $('#alerts');
  const recent = [...alerts.values()].sort((a, b) => (a.startsAt < b.startsAt ? 1 : -1)).slice(0, 20);
  list.replaceChildren(
    ...recent.map((alert) => {
      const li = document.createElement('li');
      li.className = 'alert-item';
      li.dataset.alertId = alert.id;
      li.dataset.state = alertState(alert);
      const title = document.createElement('strong');
      title.textContent = `${alert.camera}: PG ${alert.state}`;
      const when = document.createElement('div');
      when.className = 'when';
      const ackText = alert.acknowledgedAt ? ` · acknowledged ${alert.acknowledgedAt}${alert.acknowledgedBy ? ` by ${alert.acknowledgedBy}` : ''}` : '';
      when.textContent = `since ${alert.startsAt}${alert.endsAt ? ` until ${alert.endsAt}` : ''}${ackText} · run ${alert.runId}`;
      const evidence = document.createElement('div');
      evidence.className = 'evidence';
      for (const frame of (alert.evidence?.frames ?? []).slice(0, 8)) {
        const img = document.createElement('img');
        img.alt = `evidence frame ${frame.frameId}, P(PG) ${fmt(frame.pPG, 2)}`;
        img.title = img.alt;
        img.loading = 'lazy';
        img.addEventListener(
          'error',
          () => {
            const missing = document.createElement('span');
            missing.className = 'missing';
            missing.textContent = `${frame.frameId} (P=${fmt(frame.pPG, 2)})`;
            img.replaceWith(missing);
          },
          { once: true },
        );
        img.src = `/api/frames/${encodeURIComponent(frame.frameId)}/thumbnail`;
        evidence.append(img);
      }
      li.append(title, when, evidence);
      return li;
    }),
  );
  $('#no-alerts').hidden = recent.length > 0;
}

function render() {
  for (const id of dirty) {
    const state = cameras.get(id);
    if (state) renderCamera(state);
  }
  dirty.clear();
  if (alertsDirty) renderAlerts();
  alertsDirty = false;
  renderGlobalBanner();
}

// --- acknowledge ------------------------------------------------------------

function askToken(message) {
  const dialog = $('#token-dialog');
  const input = $('#token-input');
  const error = $('#token-error');
  error.hidden = !message;
  error.textContent = message ?? '';
  input.value = '';
  return new Promise((resolve) => {
    const form = $('#token-form');
    const finish = (value) => {
      form.removeEventListener('submit', onSubmit);
      $('#token-cancel').removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      finish(input.value.trim() || undefined);
    };
    const onCancel = (e) => {
      e.preventDefault();
      finish(undefined);
    };
    form.addEventListener('submit', onSubmit);
    $('#token-cancel').addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    input.focus();
  });
}

async function acknowledge(alertId) {
  let token = sessionStorage.getItem('crystalwatch.token') ?? undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const headers = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`/api/alerts/${encodeURIComponent(alertId)}/ack`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ by: localStorage.getItem('crystalwatch.operator') ?? 'live page' }),
    });
    if (response.status === 401) {
      sessionStorage.removeItem('crystalwatch.token');
      token = await askToken(attempt === 0 && !token ? undefined : 'That token was not accepted.');
      if (!token) return;
      continue;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      window.alert(`Acknowledge failed (${response.status}): ${body.error ?? response.statusText}`);
      return;
    }
    if (token) sessionStorage.setItem('crystalwatch.token', token);
    applyAlert(await response.json());
    scheduleRender();
    return;
  }
}

// --- live feed ----------------------------------------------------------------

async function loadSnapshot() {
  const [camerasResponse, alertsResponse] = await Promise.all([fetch('/api/cameras'), fetch('/api/alerts')]);
  if (camerasResponse.ok) {
    for (const snapshot of await camerasResponse.json()) {
      const state = camera(snapshot.camera);
      state.history = snapshot.history ?? [];
      state.quality = snapshot.quality ?? {};
      if (snapshot.lastPrediction) {
        state.lastPrediction = snapshot.lastPrediction;
        state.predictionsByFrame.set(snapshot.lastPrediction.frameId, snapshot.lastPrediction);
      }
      if (snapshot.thumbnail) {
        rememberThumbnail(snapshot.thumbnail);
        state.thumbnail = snapshot.thumbnail;
      }
      if (snapshot.alert) applyAlert(snapshot.alert);
      if (snapshot.overload) state.overload = snapshot.overload;
    }
  }
  if (alertsResponse.ok) for (const alert of await alertsResponse.json()) applyAlert(alert);
  scheduleRender();
}

let attempts = 0;
function connect() {
  const connection = $('#connection');
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  ws.addEventListener('open', () => {
    attempts = 0;
    connection.dataset.state = 'open';
    connection.textContent = 'live';
    // Whatever happened while we were away is in the snapshot; events follow from here.
    loadSnapshot().catch((err) => console.warn('crystalwatch: snapshot failed', err));
  });
  ws.addEventListener('message', (message) => {
    try {
      applyEvent(JSON.parse(message.data));
    } catch (err) {
      console.warn('crystalwatch: bad live event', err);
    }
  });
  ws.addEventListener('close', () => {
    connection.dataset.state = 'closed';
    // Exponential backoff with jitter, capped at 10 s, so a restarted server is not stampeded.
    const delay = Math.min(10_000, 500 * 2 ** attempts) * (0.5 + Math.random() / 2);
    attempts = Math.min(attempts + 1, 10);
    connection.textContent = `reconnecting in ${(delay / 1000).toFixed(1)} s`;
    setTimeout(connect, delay);
  });
}

connect();
// Overload figures are counters of the classify stage, not live events: refreshed from the snapshot.
setInterval(() => {
  fetch('/api/cameras')
    .then((r) => (r.ok ? r.json() : []))
    .then((snapshots) => {
      for (const s of snapshots) if (s.overload) camera(s.camera).overload = s.overload;
      scheduleRender();
    })
    .catch(() => {});
}, 10_000);
