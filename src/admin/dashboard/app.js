/*
 * Skiff live dashboard. Receives frames over the admin listener's WebSocket (/dashboard/ws) and
 * draws them with uPlot. Each chart's container carries `data-points` (x positions holding at
 * least one value) and window.__skiff mirrors the counts, so tests can see that data arrived.
 */
(function () {
  'use strict';

  // Ten hues far apart (Tableau 10): no two series of different models look alike.
  var PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#b07aa1', '#edc948', '#76b7b2', '#ff9da7', '#9c755f', '#bab0ac'];
  var CODE_COLORS = { OVERLOADED: '#f28e2b', DEADLINE_EXCEEDED: '#e15759', SERVER_BUSY: '#edc948', MODEL_ERROR: '#b07aa1', CANCELLED: '#bab0ac', MODEL_UNAVAILABLE: '#9c755f', INVALID_INPUT: '#76b7b2', SHUTTING_DOWN: '#ff9da7' };
  var BATCH_LABELS = ['1', '2-3', '4-7', '8-15', '16-31', '32-63', '64-127', '128-255', '256+'];
  var MAX_FRAMES = 600;
  var HEIGHT = 190;
  var frames = [];
  var charts = new Map();
  var appCards = new Map();
  var colorOf = new Map();
  var probe = { frames: 0, charts: {}, connected: false };
  window.__skiff = probe;

  /** One colour per model, whatever its version ("m:2" and the arm "m" share it). */
  function color(key) {
    key = String(key).replace(/:\d+$/, '');
    if (!colorOf.has(key)) colorOf.set(key, PALETTE[colorOf.size % PALETTE.length]);
    return colorOf.get(key);
  }

  function fmt(v) {
    if (v == null || !isFinite(v)) return '–';
    if (v === 0) return '0';
    var a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 100) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    return v.toFixed(3);
  }

  function fmtAxis(v) {
    var a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
    if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + 'k';
    return fmt(v);
  }

  var axis = {
    stroke: '#8b96a3',
    grid: { stroke: '#262d36', width: 1 },
    ticks: { stroke: '#262d36', width: 1 },
  };

  /**
   * A chart whose series are `defs` ({label, color, dash}); rebuilt when the set of series
   * changes (a version loaded, an arm linked).
   */
  function ensureChart(id, el, defs, yScale) {
    var sig = defs.map(function (d) { return d.label; }).join('\u0001');
    var c = charts.get(id);
    if (c && c.sig === sig && c.el === el) return c;
    if (c) c.u.destroy();
    var series = [{}].concat(defs.map(function (d) {
      return { label: d.label, stroke: d.color, width: d.width || 1.6, dash: d.dash, spanGaps: false, points: { show: false }, value: function (u, v) { return fmt(v); } };
    }));
    var opts = {
      width: Math.max(240, el.clientWidth || el.parentNode.clientWidth || 400),
      height: HEIGHT,
      series: series,
      scales: { x: { time: true }, y: yScale || {} },
      axes: [Object.assign({}, axis, { space: 70 }), Object.assign({}, axis, { size: 52, values: function (u, vals) { return vals.map(fmtAxis); } })],
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    };
    var empty = [[]].concat(defs.map(function () { return []; }));
    c = { id: id, el: el, sig: sig, u: new uPlot(opts, empty, el) };
    charts.set(id, c);
    return c;
  }

  function setData(c, xs, cols) {
    c.u.setData([xs].concat(cols));
    var n = 0;
    for (var i = 0; i < xs.length; i++) {
      for (var k = 0; k < cols.length; k++) {
        if (cols[k][i] != null) { n++; break; }
      }
    }
    c.el.dataset.points = String(n);
    probe.charts[c.id] = n;
  }

  function modelIndex(f) {
    if (!f._m) {
      f._m = {};
      for (var i = 0; i < f.models.length; i++) f._m[f.models[i].id] = f.models[i];
    }
    return f._m;
  }

  function appIndex(f) {
    if (!f._a) {
      f._a = {};
      for (var i = 0; i < f.apps.length; i++) f._a[f.apps[i].name] = f.apps[i];
    }
    return f._a;
  }

  function modelIds() {
    var seen = {};
    var ids = [];
    frames.forEach(function (f) {
      f.models.forEach(function (m) { if (!seen[m.id]) { seen[m.id] = true; ids.push(m.id); } });
    });
    return ids.sort();
  }

  function modelColumn(id, field) {
    return frames.map(function (f) {
      var m = modelIndex(f)[id];
      return m && m[field] != null ? m[field] : null;
    });
  }

  function zeroFloor(pad) {
    return { range: function (u, min, max) { return [0, Math.max(pad, max * 1.1)]; } };
  }

  function renderModels(xs) {
    var ids = modelIds();
    var solid = ids.map(function (id) { return { label: id, color: color(id) }; });
    [['c-qps', 'qps', zeroFloor(1)], ['c-queue', 'queue', zeroFloor(4)], ['c-cache', 'cacheHitRate', { range: [0, 1] }]].forEach(function (spec) {
      var c = ensureChart(spec[0], document.getElementById(spec[0]), solid, spec[2]);
      setData(c, xs, ids.map(function (id) { return modelColumn(id, spec[1]); }));
    });
    // Several series per model: one colour, told apart by dash.
    function perModel(id, fields) {
      var defs = [], cols = [];
      ids.forEach(function (m) {
        fields.forEach(function (f) {
          defs.push({ label: m + ' ' + f[1], color: color(m), dash: f[2], width: f[3] || 1.6 });
          cols.push(modelColumn(m, f[0]).map(function (v) { return f[4] && !v ? null : v; }));
        });
      });
      var c = ensureChart(id, document.getElementById(id), defs, zeroFloor(1));
      setData(c, xs, cols);
    }
    perModel('c-lat', [['p99Ms', 'p99', undefined, 2], ['p95Ms', 'p95', [6, 3]], ['p50Ms', 'p50', [2, 3]]]);
    perModel('c-split', [['computeP99Ms', 'compute p99', undefined, 2], ['queueP99Ms', 'queue p99', [6, 3]]]);
    perModel('c-cap', [['cap', 'cap', undefined, 2], ['meanBatch', 'mean', [4, 4], 1, true]]);
    perModel('c-replicas', [['replicas', 'replicas', undefined, 2], ['inflight', 'batches in flight', [6, 3]]]);
    // Errors by code, summed over models.
    var codes = [];
    frames.forEach(function (f) {
      f.models.forEach(function (m) { Object.keys(m.codesPerS || {}).forEach(function (c) { if (codes.indexOf(c) < 0) codes.push(c); }); });
    });
    codes.sort();
    var cc = ensureChart('c-codes', document.getElementById('c-codes'), codes.map(function (c, i) { return { label: c, color: CODE_COLORS[c] || PALETTE[(i + 3) % PALETTE.length] }; }), zeroFloor(1));
    setData(cc, xs, codes.map(function (c) {
      return frames.map(function (f) { var n = 0; f.models.forEach(function (m) { n += (m.codesPerS || {})[c] || 0; }); return n; });
    }));
    var rf = ensureChart('c-refusals', document.getElementById('c-refusals'), [
      { label: 'refused', color: '#f28e2b', width: 2 }, { label: 'deadline misses', color: '#e15759', dash: [6, 3] },
    ], zeroFloor(1));
    setData(rf, xs, [frames.map(function (f) { return f.refusedPerS == null ? null : f.refusedPerS; }), frames.map(function (f) { return f.deadlineMissesPerS == null ? null : f.deadlineMissesPerS; })]);
    var proc = ensureChart('c-proc', document.getElementById('c-proc'), [
      { label: 'CPU %', color: '#4e79a7', width: 2 }, { label: 'RSS MiB / 10', color: '#59a14f', dash: [6, 3] },
    ], zeroFloor(10));
    setData(proc, xs, [frames.map(function (f) { return f.process ? f.process.cpuPct : null; }), frames.map(function (f) { return f.process ? f.process.rssMb / 10 : null; })]);
    var lag = ensureChart('c-lag', document.getElementById('c-lag'), [
      { label: 'p50', color: '#59a14f' }, { label: 'p99', color: '#edc948' }, { label: 'max', color: '#e15759', dash: [4, 4] },
    ], zeroFloor(1));
    setData(lag, xs, ['p50Ms', 'p99Ms', 'maxMs'].map(function (k) {
      return frames.map(function (f) { return f.lag.samples > 0 ? f.lag[k] : null; });
    }));
    renderBatchSizes(ids);
  }

  /** Batch-size distribution per model over the last minute of frames, as stacked bars. */
  function renderBatchSizes(ids) {
    var root = document.getElementById('batch-dist');
    var recent = frames.slice(-60);
    root.innerHTML = '';
    var shown = 0;
    ids.forEach(function (id) {
      var counts = BATCH_LABELS.map(function () { return 0; });
      recent.forEach(function (f) {
        var m = modelIndex(f)[id];
        if (m && m.batchSizes) m.batchSizes.forEach(function (n, i) { counts[i] += n; });
      });
      var total = counts.reduce(function (a, b) { return a + b; }, 0);
      if (!total) return;
      shown++;
      var row = document.createElement('div');
      row.className = 'dist-row';
      row.dataset.model = id;
      var name = document.createElement('span');
      name.className = 'dist-name';
      name.textContent = id;
      name.style.color = color(id);
      row.appendChild(name);
      var bar = document.createElement('div');
      bar.className = 'dist-bar';
      counts.forEach(function (n, i) {
        if (!n) return;
        var seg = document.createElement('span');
        seg.style.width = (100 * n / total).toFixed(2) + '%';
        seg.style.background = PALETTE[(i + 2) % PALETTE.length];
        seg.title = BATCH_LABELS[i] + ' rows: ' + (100 * n / total).toFixed(1) + '% of ' + total + ' batches';
        seg.textContent = n / total >= 0.08 ? BATCH_LABELS[i] : '';
        bar.appendChild(seg);
      });
      row.appendChild(bar);
      root.appendChild(row);
    });
    root.dataset.points = String(shown);
    probe.charts['batch-dist'] = shown;
    if (!shown) root.innerHTML = '<p class="empty">no batches yet</p>';
  }

  function renderNow() {
    var f = frames[frames.length - 1];
    if (!f) return;
    var body = document.querySelector('#now tbody');
    body.innerHTML = '';
    f.models.forEach(function (m) {
      var tr = document.createElement('tr');
      [m.id, fmt(m.qps), fmt(m.p50Ms), fmt(m.p95Ms), fmt(m.p99Ms), fmt(m.queueP99Ms), fmt(m.computeP99Ms), String(m.replicas), String(m.inflight), fmt(m.meanBatch)].forEach(function (t, i) {
        var td = document.createElement('td');
        td.textContent = t;
        if (i === 0) td.style.color = color(m.id);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function appCard(name) {
    var card = appCards.get(name);
    if (card) return card;
    var root = document.getElementById('apps');
    var empty = root.querySelector('.empty');
    if (empty) empty.remove();
    var el = document.createElement('div');
    el.className = 'card app-card';
    el.dataset.app = name;
    el.innerHTML = '<h3></h3><div class="meta"></div><div class="pair">' +
      '<div><h3>Latency <span class="unit">ms · dashed: SLO</span></h3><div class="chart lat"></div></div>' +
      '<div><h3>Selection weights <span class="unit">per linked model</span></h3><div class="chart weights"></div></div></div>';
    el.querySelector('h3').textContent = name;
    root.appendChild(el);
    card = { el: el, lat: el.querySelector('.lat'), weights: el.querySelector('.weights'), meta: el.querySelector('.meta') };
    appCards.set(name, card);
    return card;
  }

  function renderApps(xs) {
    var last = frames[frames.length - 1];
    var names = last ? last.apps.map(function (a) { return a.name; }) : [];
    appCards.forEach(function (card, name) {
      if (names.indexOf(name) < 0) {
        ['app-lat:' + name, 'app-w:' + name].forEach(function (id) {
          var c = charts.get(id);
          if (c) { c.u.destroy(); charts.delete(id); delete probe.charts[id]; }
        });
        card.el.remove();
        appCards.delete(name);
      }
    });
    names.forEach(function (name) {
      var card = appCard(name);
      var col = function (field) {
        return frames.map(function (f) { var a = appIndex(f)[name]; return a && a.qps > 0 ? a[field] : null; });
      };
      var slo = frames.map(function (f) { var a = appIndex(f)[name]; return a ? a.sloMs : null; });
      var lat = ensureChart('app-lat:' + name, card.lat, [
        { label: 'p50', color: '#58a6ff' }, { label: 'p99', color: '#d29922', width: 2 }, { label: 'SLO', color: '#f85149', dash: [6, 4] },
      ], { range: function (u, min, max) { return [0, Math.max(1, max * 1.15)]; } });
      setData(lat, xs, [col('p50Ms'), col('p99Ms'), slo]);
      var arms = [];
      frames.forEach(function (f) {
        var a = appIndex(f)[name];
        if (a) Object.keys(a.weights).forEach(function (k) { if (arms.indexOf(k) < 0) arms.push(k); });
      });
      arms.sort();
      var w = ensureChart('app-w:' + name, card.weights, arms.map(function (k) { return { label: k, color: color(k) }; }), { range: [0, 1] });
      setData(w, xs, arms.map(function (k) {
        return frames.map(function (f) { var a = appIndex(f)[name]; return a && a.weights[k] != null ? a.weights[k] : null; });
      }));
      var a = appIndex(last)[name];
      card.meta.innerHTML = '';
      [['qps', fmt(a.qps)], ['p99 ms', fmt(a.qps > 0 ? a.p99Ms : null)], ['SLO ms', fmt(a.sloMs)], ['defaults', a.defaultRate == null ? '–' : (a.defaultRate * 100).toFixed(1) + '%']].forEach(function (kv, i) {
        if (i > 0) card.meta.appendChild(document.createTextNode(' · '));
        card.meta.appendChild(document.createTextNode(kv[0] + ' '));
        var b = document.createElement('b');
        b.textContent = kv[1];
        card.meta.appendChild(b);
      });
    });
  }

  function renderTiles() {
    var f = frames[frames.length - 1];
    if (!f) return;
    var qps = 0, errs = 0, appQps = 0;
    f.models.forEach(function (m) { qps += m.qps; errs += m.errorsPerS; });
    f.apps.forEach(function (a) { appQps += a.qps; });
    var ready = f.health.filter(function (h) { return h.state === 'ready'; }).length;
    document.getElementById('t-qps').textContent = fmt(qps);
    document.getElementById('t-app-qps').textContent = fmt(appQps);
    document.getElementById('t-err').textContent = fmt(errs);
    document.getElementById('t-lag').textContent = fmt(f.lag.p99Ms);
    document.getElementById('t-ready').textContent = ready + ' / ' + f.health.length;
    document.getElementById('t-conn').textContent = String(f.connections);
    document.getElementById('t-cpu').textContent = f.process ? fmt(f.process.cpuPct) : '–';
    document.getElementById('t-mem').textContent = f.process ? fmt(f.process.rssMb) : '–';
  }

  function renderHealth() {
    var f = frames[frames.length - 1];
    if (!f) return;
    var body = document.querySelector('#health tbody');
    body.innerHTML = '';
    f.health.forEach(function (h) {
      var tr = document.createElement('tr');
      var cells = [h.id, null, h.current ? 'yes' : '', String(h.replicas), String(h.restarts), String(h.queries), String(h.errors), h.reason || ''];
      cells.forEach(function (text, i) {
        var td = document.createElement('td');
        if (i === 1) {
          var b = document.createElement('span');
          b.className = 'badge ' + h.state;
          b.textContent = h.state;
          td.appendChild(b);
        } else td.textContent = text;
        if (i === 4 && h.restarts > 0) td.className = 'bad';
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function render() {
    var xs = frames.map(function (f) { return f.t / 1000; });
    renderTiles();
    renderModels(xs);
    renderApps(xs);
    renderHealth();
    renderNow();
    probe.frames = frames.length;
  }

  function setStatus(state, text) {
    var el = document.getElementById('status');
    el.dataset.state = state;
    document.getElementById('status-text').textContent = text;
  }

  function connect() {
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/dashboard/ws' + location.search;
    var ws = new WebSocket(url);
    ws.onopen = function () {
      probe.connected = true;
      setStatus('live', 'live');
    };
    ws.onmessage = function (ev) {
      var msg = JSON.parse(ev.data);
      if (msg.type === 'hello') {
        frames = msg.history.slice(-MAX_FRAMES);
        setStatus('live', 'live · every ' + msg.intervalMs + ' ms');
      } else if (msg.type === 'frame') {
        frames.push(msg.frame);
        if (frames.length > MAX_FRAMES) frames.splice(0, frames.length - MAX_FRAMES);
      }
      render();
    };
    ws.onclose = function () {
      probe.connected = false;
      setStatus('down', 'disconnected — retrying');
      setTimeout(connect, 2000);
    };
  }

  window.addEventListener('resize', function () {
    charts.forEach(function (c) { c.u.setSize({ width: Math.max(240, c.el.clientWidth), height: HEIGHT }); });
  });
  connect();
})();
