// The StrikeMQ web console: plain JavaScript, no libraries, nothing fetched from
// outside. It calls only the broker's JSON API (and /metrics) on its own origin.
// Everything the broker returns (topic names, keys, values, headers) is untrusted
// data: it is put in the page with textContent, never as HTML.
'use strict';

const TICK_MS = 1000;
// Samples of /metrics kept for the latency chart (one per tick).
const HISTORY_MAX = 120;
// Window of the rate/percentile tables, in samples.
const TABLE_WINDOW = 10;
// Lines drawn in the chart: the busiest APIs.
const CHART_SERIES_MAX = 6;
const COLORS = ['#e63946', '#1d70b8', '#2a9d8f', '#f4a261', '#6a4c93', '#8d99ae'];

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fill(tbody, rows, emptyText, columns) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    tbody.append(el('tr', {}, el('td', { colspan: columns, class: 'empty' }, emptyText)));
    return;
  }
  tbody.append(...rows);
}

class ApiError extends Error {}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let data = text;
  try { data = JSON.parse(text); } catch (_) { /* not JSON: keep the text */ }
  if (!response.ok) {
    const why = data && data.error ? data.error : text;
    throw new ApiError(`${response.status}: ${why}`);
  }
  return data;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m ${s % 60}s`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

function micros(seconds) {
  if (seconds === null || !Number.isFinite(seconds)) return '–';
  const us = seconds * 1e6;
  if (us >= 1000) return `${(us / 1000).toFixed(us >= 10000 ? 0 : 1)} ms`;
  return `${us.toFixed(us >= 100 ? 0 : 1)} µs`;
}

function show(target, text, ok) {
  target.textContent = text;
  target.className = `result ${ok ? 'ok' : 'error'}`;
}

function configValue(v) {
  if (v === null || v === undefined) return 'none';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// ---------------------------------------------------------------- /metrics

// Prometheus text format: `name{label="value",...} number` per sample line.
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    let l;
    while ((l = re.exec(m[3] || '')) !== null) {
      labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

// One scrape reduced to what the console shows.
function digest(samples) {
  const apis = {};
  const api = (name) => (apis[name] ||= { requests: 0, errors: 0, buckets: [] });
  const gauges = {};
  for (const s of samples) {
    switch (s.name) {
      case 'strikemq_requests_total': api(s.labels.api).requests = s.value; break;
      case 'strikemq_request_errors_total': api(s.labels.api).errors = s.value; break;
      case 'strikemq_request_duration_seconds_bucket':
        api(s.labels.api).buckets.push([s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value]);
        break;
      default:
        if (Object.keys(s.labels).length === 0) gauges[s.name] = s.value;
    }
  }
  for (const a of Object.values(apis)) a.buckets.sort((x, y) => x[0] - y[0]);
  return { at: Date.now(), apis, gauges, samples };
}

// The q-quantile of the requests between two scrapes, from cumulative buckets,
// interpolated linearly inside its bucket; null without requests.
function quantile(newer, older, q) {
  const deltas = newer.buckets.map(([le, c], i) => [le, c - (older ? older.buckets[i]?.[1] || 0 : 0)]);
  const total = deltas.length ? deltas[deltas.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0, lowerCount = 0;
  for (const [le, c] of deltas) {
    if (c >= rank) {
      if (!Number.isFinite(le)) return lowerBound; // beyond the last bound: a floor
      const inBucket = c - lowerCount;
      return inBucket > 0 ? lowerBound + (le - lowerBound) * (rank - lowerCount) / inBucket : le;
    }
    lowerBound = Number.isFinite(le) ? le : lowerBound;
    lowerCount = c;
  }
  return lowerBound;
}

const history = [];

function rate(name, window) {
  const n = history.length;
  if (n < 2) return null;
  const newer = history[n - 1], older = history[Math.max(0, n - 1 - window)];
  const seconds = (newer.at - older.at) / 1000;
  const a = newer.apis[name], b = older.apis[name];
  if (!a || seconds <= 0) return null;
  return (a.requests - (b ? b.requests : 0)) / seconds;
}

function gaugeRate(name, window) {
  const n = history.length;
  if (n < 2) return null;
  const newer = history[n - 1], older = history[Math.max(0, n - 1 - window)];
  const seconds = (newer.at - older.at) / 1000;
  return seconds > 0 ? (newer.gauges[name] - older.gauges[name]) / seconds : null;
}

// ---------------------------------------------------------------- pages

const pages = {};

pages.overview = {
  async load() {
    const info = await api('GET', '/v1/broker');
    const last = history[history.length - 1];
    const g = last ? last.gauges : {};
    const totalRate = last ? Object.keys(last.apis).reduce((sum, a) => sum + (rate(a, 1) || 0), 0) : null;
    const card = (label, value, id) => el('div', { class: 'card', id },
      el('div', { class: 'label' }, label), el('div', { class: 'value' }, value));
    document.getElementById('overview-cards').replaceChildren(
      card('version', info.version, 'overview-version'),
      card('uptime', duration(info.uptime_ms), 'overview-uptime'),
      card('Kafka listener', info.listeners.kafka),
      card('advertised', info.listeners.advertised),
      card('connections', g.strikemq_connections ?? '–', 'overview-connections'),
      card('requests/s', totalRate === null ? '–' : totalRate.toFixed(1), 'overview-rate'),
      card('in / out', `${bytes(Math.max(0, gaugeRate('strikemq_received_bytes_total', 1) || 0))}/s · ${bytes(Math.max(0, gaugeRate('strikemq_sent_bytes_total', 1) || 0))}/s`),
      card('topics', info.topics),
      card('parked requests', g.strikemq_parked_requests ?? '–'),
      card('io threads', info.io_threads),
      card('platform', `${info.platform.os} ${info.platform.kernel || ''} · ${info.platform.cpus} CPUs`),
      card('data dir', info.data_dir),
    );
    const rows = [];
    if (last) {
      for (const [name, a] of Object.entries(last.apis).sort((x, y) => y[1].requests - x[1].requests)) {
        if (a.requests === 0) continue;
        const r = rate(name, 1);
        rows.push(el('tr', {}, el('td', {}, name), el('td', { class: 'num' }, r === null ? '–' : r.toFixed(1)),
          el('td', { class: 'num' }, a.requests), el('td', { class: 'num' }, a.errors)));
      }
    }
    fill(document.querySelector('#overview-rates tbody'), rows, 'no Kafka requests yet', 4);

    const fallbacks = Object.fromEntries(info.fallbacks.map((f) => [f.key, f]));
    const changed = Object.fromEntries(info.changed_at_runtime.map((c) => [c.key, c]));
    const configRows = Object.entries(info.effective_config).map(([key, value]) => {
      const note = [];
      if (fallbacks[key]) {
        const f = fallbacks[key];
        note.push(el('span', { class: 'badge warn' }, 'fallback'), ` requested ${f.requested}: ${f.reason}`);
      }
      if (changed[key]) {
        note.push(el('span', { class: 'badge live' }, 'changed'), ` start-up value ${configValue(changed[key].startup)}`);
      }
      return el('tr', { class: fallbacks[key] ? 'fallback' : '' },
        el('td', {}, el('code', {}, key)), el('td', {}, configValue(value)), el('td', {}, note));
    });
    fill(document.querySelector('#overview-config tbody'), configRows, 'no configuration', 3);
  },
  tick() { return this.load(); },
};

pages.topics = {
  async load() {
    const { topics } = await api('GET', '/v1/topics');
    const last = history[history.length - 1];
    const sizes = {};
    for (const s of last ? last.samples : []) {
      if (s.name === 'strikemq_partition_size_bytes') {
        sizes[s.labels.topic] = (sizes[s.labels.topic] || 0) + s.value;
      }
    }
    const rows = topics.map((t) => el('tr', { 'data-topic': t.name },
      el('td', {}, t.name),
      el('td', { class: 'num' }, t.partitions),
      el('td', { class: 'num' }, t.messages),
      el('td', { class: 'num' }, sizes[t.name] === undefined ? '–' : bytes(sizes[t.name])),
      el('td', { class: 'offsets' }, t.offsets.map((o) => `${o.partition}: ${o.start_offset}–${o.end_offset}`).join('  ·  ')),
      el('td', { class: 'actions' },
        el('button', { type: 'button', class: 'browse', onclick: () => browse(t.name) }, 'Browse'),
        el('button', { type: 'button', class: 'delete danger', onclick: () => deleteTopic(t.name) }, 'Delete')),
    ));
    fill(document.querySelector('#topics-table tbody'), rows, 'no topics', 6);
  },
  tick() { return this.load(); },
};

async function deleteTopic(name) {
  if (!window.confirm(`Delete topic "${name}" and all its data?`)) return;
  const result = document.getElementById('topic-create-result');
  try {
    await api('DELETE', `/v1/topics/${encodeURIComponent(name)}`);
    show(result, `deleted ${name}`, true);
  } catch (e) {
    show(result, e.message, false);
  }
  await pages.topics.load();
}

function browse(name) {
  pages.messages.wanted = name;
  location.hash = '#messages';
}

document.getElementById('topic-create').addEventListener('submit', async (event) => {
  event.preventDefault();
  const result = document.getElementById('topic-create-result');
  const name = document.getElementById('topic-name').value.trim();
  const partitions = document.getElementById('topic-partitions').value;
  const body = { name };
  if (partitions !== '') body.partitions = Number(partitions);
  try {
    const created = await api('POST', '/v1/topics', body);
    show(result, `created ${created.name} with ${created.partition_count} partition(s)`, true);
    document.getElementById('topic-name').value = '';
  } catch (e) {
    show(result, e.message, false);
  }
  await pages.topics.load();
});

pages.messages = {
  wanted: null,
  next: null,
  async load() {
    const select = document.getElementById('peek-topic');
    const { topics } = await api('GET', '/v1/topics');
    const current = this.wanted || select.value;
    select.replaceChildren(...topics.map((t) => el('option', { value: t.name }, t.name)));
    if (topics.some((t) => t.name === current)) select.value = current;
    if (this.wanted) {
      this.wanted = null;
      document.getElementById('peek-offset').value = '';
      await this.peek();
    }
  },
  async peek(offset) {
    const info = document.getElementById('peek-info');
    const topic = document.getElementById('peek-topic').value;
    if (!topic) { show(info, 'no topic to peek at', false); return; }
    const params = new URLSearchParams();
    params.set('partition', document.getElementById('peek-partition').value || '0');
    const from = offset ?? document.getElementById('peek-offset').value;
    if (from !== '' && from !== undefined) params.set('offset', String(from));
    params.set('limit', document.getElementById('peek-limit').value || '20');
    try {
      const peek = await api('GET', `/v1/topics/${encodeURIComponent(topic)}/messages?${params}`);
      this.next = peek.next_offset;
      show(info, `partition ${peek.partition}: offsets ${peek.start_offset}–${peek.end_offset}, showing ${peek.messages.length}`, true);
      const text = (value, b64) => value === null ? el('span', { class: 'null' }, 'null')
        : [b64 ? el('span', { class: 'badge', title: 'not UTF-8: shown as base64' }, 'b64') : null, value];
      const rows = peek.messages.map((m) => el('tr', {},
        el('td', { class: 'num' }, m.offset),
        el('td', { title: m.timestamp_type }, new Date(m.timestamp).toISOString()),
        el('td', { class: 'key' }, text(m.key, m.key_base64)),
        el('td', { class: 'value' }, text(m.value, m.value_base64)),
        el('td', { class: 'headers' }, Object.entries(m.headers).map(([k, v]) =>
          el('div', {}, `${k}=`, text(v, m.headers_base64.includes(k))))),
      ));
      fill(document.querySelector('#peek-table tbody'), rows, 'no messages at this offset', 5);
    } catch (e) {
      show(info, e.message, false);
    }
  },
};

document.getElementById('peek-form').addEventListener('submit', (event) => {
  event.preventDefault();
  pages.messages.peek();
});
document.getElementById('peek-next').addEventListener('click', () => {
  if (pages.messages.next !== null) {
    document.getElementById('peek-offset').value = pages.messages.next;
    pages.messages.peek();
  }
});

document.getElementById('produce-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const result = document.getElementById('produce-result');
  const topic = document.getElementById('peek-topic').value;
  if (!topic) { show(result, 'choose a topic above first', false); return; }
  const message = { value: document.getElementById('produce-value').value };
  const key = document.getElementById('produce-key').value;
  if (key !== '') message.key = key;
  const partition = document.getElementById('produce-partition').value;
  if (partition !== '') message.partition = Number(partition);
  const headers = {};
  for (const line of document.getElementById('produce-headers').value.split('\n')) {
    if (line.trim() === '') continue;
    const at = line.indexOf('=');
    if (at < 0) { show(result, `header line "${line}": expected name=value`, false); return; }
    headers[line.slice(0, at).trim()] = line.slice(at + 1);
  }
  if (Object.keys(headers).length) message.headers = headers;
  try {
    const produced = await api('POST', `/v1/topics/${encodeURIComponent(topic)}/messages`, { messages: [message] });
    const p = produced.partitions[0];
    show(result, `appended to ${topic} partition ${p.partition} at offset ${p.base_offset}`, true);
    document.getElementById('peek-partition').value = p.partition;
    document.getElementById('peek-offset').value = '';
    await pages.messages.peek();
  } catch (e) {
    show(result, e.message, false);
  }
});

pages.groups = {
  selected: null,
  async load() {
    const { groups } = await api('GET', '/v1/groups');
    const details = await Promise.all(groups.map((g) =>
      api('GET', `/v1/groups/${encodeURIComponent(g.group_id)}`).catch(() => null)));
    const rows = groups.map((g, i) => {
      // No committed offsets: no lag to speak of (not zero).
      const offsets = details[i] ? details[i].offsets : [];
      const lag = offsets.length ? offsets.reduce((sum, o) => sum + (o.lag || 0), 0) : null;
      return el('tr', { 'data-group': g.group_id, class: `clickable ${g.group_id === this.selected ? 'selected' : ''}`,
        onclick: () => { this.selected = g.group_id; this.load(); } },
        el('td', {}, g.group_id), el('td', {}, g.state), el('td', {}, g.protocol_type ?? '–'),
        el('td', { class: 'num' }, g.members), el('td', { class: 'num lag' }, lag ?? '–'));
    });
    fill(document.querySelector('#groups-table tbody'), rows, 'no consumer groups', 5);
    if (this.selected === null && groups.length > 0) this.selected = groups[0].group_id;
    const index = groups.findIndex((g) => g.group_id === this.selected);
    const detail = document.getElementById('group-detail');
    if (index < 0 || !details[index]) { detail.replaceChildren(); return; }
    const d = details[index];
    const members = d.members.map((m) => el('tr', {},
      el('td', {}, m.member_id), el('td', {}, m.group_instance_id ?? '–'), el('td', {}, m.client_id), el('td', {}, m.host || '–'),
      el('td', {}, m.assignment === null ? '–' : m.assignment.map((a) => `${a.topic}: [${a.partitions.join(', ')}]`).join('; '))));
    const offsets = d.offsets.map((o) => el('tr', {},
      el('td', {}, o.topic), el('td', { class: 'num' }, o.partition), el('td', { class: 'num' }, o.committed_offset),
      el('td', { class: 'num' }, o.end_offset ?? '–'), el('td', { class: 'num lag' }, o.lag ?? '–'), el('td', {}, o.metadata)));
    const numeric = ['partition', 'committed', 'end', 'lag'];
    const table = (head, rows, empty) => {
      const tbody = el('tbody');
      fill(tbody, rows, empty, head.length);
      return el('table', {}, el('thead', {}, el('tr', {},
        head.map((h) => el('th', { class: numeric.includes(h) ? 'num' : null }, h)))), tbody);
    };
    detail.replaceChildren(
      el('h3', {}, `Group ${d.group_id}`),
      el('p', {}, `state ${d.state} · generation ${d.generation} · protocol ${d.protocol ?? '–'} · leader ${d.leader ?? '–'}`),
      el('h4', {}, 'Members'),
      table(['member id', 'instance id', 'client id', 'host', 'assignment'], members, 'no members'),
      el('h4', {}, 'Committed offsets'),
      Object.assign(table(['topic', 'partition', 'committed', 'end', 'lag', 'metadata'], offsets, 'no committed offsets'), { id: 'group-offsets' }),
    );
  },
  tick() { return this.load(); },
};

// ---------------------------------------------------------------- latency chart

pages.latency = {
  load() { this.draw(); },
  tick() { this.draw(); },
  draw() {
    const q = Number(document.getElementById('latency-quantile').value);
    const n = history.length;
    const last = history[n - 1];
    const names = last ? Object.keys(last.apis).filter((a) => (rate(a, HISTORY_MAX) || 0) > 0) : [];
    names.sort((a, b) => (rate(b, HISTORY_MAX) || 0) - (rate(a, HISTORY_MAX) || 0));
    const series = names.slice(0, CHART_SERIES_MAX).map((name) => ({
      name,
      points: history.slice(1).map((h, i) => [h.at, h.apis[name] ? quantile(h.apis[name], history[i].apis[name], q) : null]),
    }));
    drawChart(document.getElementById('latency-chart'), series, q);

    const older = history[Math.max(0, n - 1 - TABLE_WINDOW)];
    const rows = names.map((name) => {
      const a = last.apis[name], b = older.apis[name];
      return el('tr', {}, el('td', {}, name),
        el('td', { class: 'num' }, (rate(name, TABLE_WINDOW) || 0).toFixed(1)),
        el('td', { class: 'num' }, micros(quantile(a, b, 0.5))),
        el('td', { class: 'num' }, micros(quantile(a, b, 0.99))),
        el('td', { class: 'num' }, micros(quantile(a, b, 0.999))));
    });
    fill(document.querySelector('#latency-table tbody'), rows, 'no Kafka requests in the last two minutes', 5);
  },
};

document.getElementById('latency-quantile').addEventListener('change', () => pages.latency.draw());

// A time-series chart on a log-scale y axis (latencies span decades).
function drawChart(canvas, series, q) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const pad = { left: 64, right: 150, top: 16, bottom: 32 };
  const plotW = width - pad.left - pad.right, plotH = height - pad.top - pad.bottom;
  ctx.font = '12px system-ui, sans-serif';
  ctx.fillStyle = '#333';
  const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v !== null && v > 0));
  const now = Date.now();
  const t0 = now - HISTORY_MAX * TICK_MS;
  if (values.length === 0) {
    ctx.fillText('Waiting for Kafka requests… (the chart shows the last two minutes)', pad.left, pad.top + plotH / 2);
    return;
  }
  let lo = Math.floor(Math.log10(Math.min(...values)));
  let hi = Math.ceil(Math.log10(Math.max(...values)));
  if (hi <= lo) hi = lo + 1;
  const x = (t) => pad.left + (t - t0) / (now - t0) * plotW;
  const y = (v) => pad.top + plotH - (Math.log10(v) - lo) / (hi - lo) * plotH;
  ctx.strokeStyle = '#ddd';
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let e = lo; e <= hi; e++) {
    const v = 10 ** e;
    ctx.beginPath(); ctx.moveTo(pad.left, y(v)); ctx.lineTo(pad.left + plotW, y(v)); ctx.stroke();
    ctx.fillText(micros(v), pad.left - 6, y(v));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (let s = 0; s <= HISTORY_MAX; s += 30) {
    const t = now - s * 1000;
    ctx.fillText(s === 0 ? 'now' : `-${s}s`, x(t), pad.top + plotH + 8);
  }
  ctx.strokeStyle = '#888';
  ctx.strokeRect(pad.left, pad.top, plotW, plotH);
  series.forEach((s, i) => {
    ctx.strokeStyle = COLORS[i % COLORS.length];
    ctx.fillStyle = ctx.strokeStyle;
    ctx.lineWidth = 2;
    ctx.beginPath();
    let drawing = false;
    for (const [t, v] of s.points) {
      if (v === null || v <= 0) { drawing = false; continue; }
      if (drawing) ctx.lineTo(x(t), y(v)); else ctx.moveTo(x(t), y(v));
      drawing = true;
    }
    ctx.stroke();
    for (const [t, v] of s.points) {
      if (v !== null && v > 0) ctx.fillRect(x(t) - 1.5, y(v) - 1.5, 3, 3);
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.fillRect(pad.left + plotW + 12, pad.top + 10 + i * 20 - 5, 10, 10);
    ctx.fillStyle = '#333';
    ctx.fillText(s.name, pad.left + plotW + 28, pad.top + 10 + i * 20);
  });
  ctx.save();
  ctx.translate(14, pad.top + plotH / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = 'center';
  ctx.fillStyle = '#333';
  ctx.fillText(`p${q * 100} service time per second (log scale)`, 0, 0);
  ctx.restore();
}

// ---------------------------------------------------------------- live toggles

pages.config = {
  async load() {
    const [live, info] = await Promise.all([api('GET', '/v1/config'), api('GET', '/v1/broker')]);
    const startup = Object.fromEntries(info.changed_at_runtime.map((c) => [c.key, c.startup]));
    const tbody = document.querySelector('#config-table tbody');
    // Rendered from whatever keys the broker reports, so a new live key needs no
    // console change; the input follows the value's JSON type.
    const rows = Object.entries(live).map(([key, value]) => {
      const id = `config-${key}`;
      const input = typeof value === 'boolean'
        ? el('input', { type: 'checkbox', id, checked: value })
        : el('input', { type: typeof value === 'number' ? 'number' : 'text', id, value: configValue(value) });
      const result = el('span', { class: 'result', id: `${id}-result` });
      const apply = async () => {
        let next;
        if (typeof value === 'boolean') next = input.checked;
        else if (typeof value === 'number') {
          next = Number(input.value);
          if (input.value.trim() === '' || !Number.isFinite(next)) { show(result, 'enter a number', false); return; }
        } else next = input.value.trim();
        try {
          const answer = await api('PUT', '/v1/config', { [key]: next });
          show(result, `now ${configValue(answer[key])}`, true);
        } catch (e) {
          show(result, e.message, false);
        }
      };
      input.addEventListener('keydown', (e) => { if (e.key === 'Enter') apply(); });
      if (typeof value === 'boolean') input.addEventListener('change', apply);
      return el('tr', { 'data-key': key },
        el('td', {}, el('label', { for: id }, el('code', {}, key))),
        el('td', {}, input),
        el('td', {}, key in startup ? configValue(startup[key]) : 'unchanged'),
        el('td', {}, typeof value === 'boolean' ? null : el('button', { type: 'button', id: `${id}-apply`, onclick: apply }, 'Apply'), result));
    });
    fill(tbody, rows, 'no live toggles', 4);
  },
};

// ---------------------------------------------------------------- routing and polling

let current = null;

async function run(what) {
  const status = document.getElementById('status');
  try {
    await what();
    status.textContent = 'live';
    status.className = 'status ok';
  } catch (e) {
    status.textContent = `error: ${e.message}`;
    status.className = 'status error';
  }
}

function route() {
  const name = (location.hash || '#overview').slice(1);
  current = pages[name] ? name : 'overview';
  for (const section of document.querySelectorAll('.page')) section.hidden = section.id !== `page-${current}`;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === current);
  run(() => pages[current].load());
}

let ticking = false;
async function tick() {
  if (ticking) return; // a slow answer must not pile up requests
  ticking = true;
  await run(async () => {
    const text = await fetch('/metrics').then((r) => {
      if (!r.ok) throw new ApiError(`/metrics answered ${r.status}`);
      return r.text();
    });
    history.push(digest(parseMetrics(text)));
    if (history.length > HISTORY_MAX + 1) history.shift();
    const page = pages[current];
    if (page && page.tick) await page.tick();
  });
  ticking = false;
}

window.addEventListener('hashchange', route);
route();
tick();
setInterval(tick, TICK_MS);
