// stratiflow dashboard: draws the board the server (or the report's embedded snapshot) holds.
// The rows are made in Python (stratiflow/dashboard/board.py); this file only draws them.
(function () {
  "use strict";

  const COLORS = ["#0969da", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#0a7ea4",
                  "#cf222e", "#6e7781", "#953800", "#116329"];
  const MARKERS = {
    drift_warning: { color: "#bf8700", dash: [4, 4], label: "drift warning" },
    drift: { color: "#d1242f", dash: [], label: "drift" },
    model_reset: { color: "#8250df", dash: [2, 3], label: "model reset" },
    model_swap: { color: "#8250df", dash: [], label: "model swap" },
    background_start: { color: "#6e7781", dash: [2, 3], label: "background start" },
    background_drop: { color: "#6e7781", dash: [6, 3], label: "background drop" },
    promotion: { color: "#1a7f37", dash: [], label: "promotion" },
  };

  let board = null;
  let selected = null;
  let chosen = false; // the user picked the key: keep it
  let charts = {};
  let drawQueued = false;
  let events = null;
  const embedded = document.getElementById("snapshot");

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return String(value);
    return value.toFixed(digits === undefined ? 4 : digits);
  }

  function setStatus(text, error) {
    const node = document.getElementById("status");
    node.textContent = text;
    node.className = error ? "status error" : "status";
  }

  function emptyKey() {
    return { metrics: [], mix: [], markers: [], label_requests: 0, dead_letters: {} };
  }

  function keyView(key) {
    if (!board.keys[key]) board.keys[key] = emptyKey();
    return board.keys[key];
  }

  // Apply the server's patches; false when the page must reload the whole board.
  function apply(patches) {
    for (const patch of patches) {
      switch (patch.kind) {
        case "row": keyView(patch.key)[patch.series].push(patch.row); break;
        case "dead_letter": {
          board.dead_letters[patch.reason] = (board.dead_letters[patch.reason] || 0) + 1;
          const view = keyView(patch.key);
          view.dead_letters[patch.reason] = (view.dead_letters[patch.reason] || 0) + 1;
          break;
        }
        case "label_request": keyView(patch.key).label_requests += 1; break;
        case "health": board.health = patch.health; break;
        case "source": board.sources[patch.name] = { ok: patch.ok, message: patch.message }; break;
        case "unreadable":
          board.unreadable[patch.stream] = (board.unreadable[patch.stream] || 0) + 1; break;
        case "reset": return false;
        default: break;
      }
      board.seq = patch.seq;
    }
    return true;
  }

  function last(rows) { return rows.length ? rows[rows.length - 1] : null; }

  function total(counts) { return Object.values(counts || {}).reduce((a, b) => a + b, 0); }

  function queueDraw() {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => { drawQueued = false; draw(); });
  }

  function draw() {
    drawSources();
    drawHealth();
    drawKeys();
    drawDeadLetters("#dead-letters", board.dead_letters);
    drawKey();
    document.body.setAttribute("data-seq", String(board.seq));
  }

  function drawSources() {
    const box = document.getElementById("sources");
    box.replaceChildren();
    for (const [name, source] of Object.entries(board.sources || {})) {
      box.appendChild(el("div", { class: source.ok ? "source" : "source error",
        "data-source": name }, `${name}: ${source.message}`));
    }
    const unreadable = total(board.unreadable);
    if (unreadable) {
      box.appendChild(el("div", { class: "source error", "data-testid": "unreadable" },
        `${unreadable} records were not JSON objects with a key (not drawn)`));
    }
  }

  function tile(box, id, label, value) {
    const node = el("div", { class: "tile", "data-testid": `tile-${id}` });
    node.appendChild(el("div", { class: "label" }, label));
    node.appendChild(el("div", { class: "value", "data-value": id }, value));
    box.appendChild(node);
  }

  function drawHealth() {
    const section = document.getElementById("health");
    const health = board.health;
    section.hidden = !health;
    if (!health) return;
    const box = document.getElementById("health-tiles");
    box.replaceChildren();
    if (!health.job) { tile(box, "job-state", "job", "no job on the cluster"); return; }
    tile(box, "job-state", health.job, health.state);
    tile(box, "rate-in", "records in / s", fmt(health.rate_in, 0));
    tile(box, "rate-out", "records out / s", fmt(health.rate_out, 0));
    tile(box, "backpressure", "back-pressure", fmt(health.backpressure));
    tile(box, "watermark-lag", "watermark lag (s)",
      health.watermark_lag_ms === null ? "–" : fmt(health.watermark_lag_ms / 1000, 1));
    const checkpoint = health.last_checkpoint;
    let text = "–";
    if (checkpoint && checkpoint.at_ms) {
      text = `#${checkpoint.id}, ${fmt((Date.now() - checkpoint.at_ms) / 1000, 0)} s ago`;
    } else if (checkpoint) {
      text = `none yet (${checkpoint.failed} failed)`;
    }
    tile(box, "checkpoint", "last checkpoint", text);
    tile(box, "restarts", "restarts", fmt(health.restarts));
  }

  function drawKeys() {
    const body = document.querySelector("#keys tbody");
    body.replaceChildren();
    const keys = Object.keys(board.keys).sort();
    const drawn = (k) => board.keys[k].metrics.length > 0;
    if (selected === null || !board.keys[selected] || (!chosen && !drawn(selected))) {
      selected = keys.find(drawn) || keys[0] || null;
    }
    for (const key of keys) {
      const view = board.keys[key];
      const row = last(view.metrics) || {};
      const tr = el("tr", { "data-key": key, class: key === selected ? "selected" : "" });
      const cells = [
        ["key", key], ["scored", fmt(row.scored)], ["acc", fmt(row.acc)],
        ["r_acc", fmt(row.r_acc)], ["macro_f1", fmt(row.macro_f1)],
        ["model_version", fmt(row.model_version)], ["generation", fmt(row.generation)],
        ["serving", row.champion || (view.metrics.length ? "main" : "–")],
        ["label_requests", fmt(view.label_requests)],
        ["dead_letters", fmt(total(view.dead_letters))],
      ];
      for (const [field, text] of cells) tr.appendChild(el("td", { "data-field": field }, text));
      tr.addEventListener("click", () => { selected = key; chosen = true; draw(); });
      body.appendChild(tr);
    }
    const select = document.getElementById("key-select");
    if (select.options.length !== keys.length ||
        keys.some((k, i) => select.options[i].value !== k)) {
      select.replaceChildren(...keys.map((k) => el("option", { value: k }, k)));
    }
    if (selected !== null) select.value = selected;
    select.onchange = () => { selected = select.value; chosen = true; draw(); };
    document.getElementById("key-section").hidden = selected === null;
  }

  function drawDeadLetters(selector, counts) {
    const body = document.querySelector(`${selector} tbody`);
    body.replaceChildren();
    const reasons = Object.entries(counts).sort((a, b) => b[1] - a[1]);
    if (!reasons.length) {
      body.appendChild(el("tr", {}, "")).appendChild(el("td", { colspan: "2" }, "none"));
    }
    for (const [reason, count] of reasons) {
      const tr = el("tr", { "data-reason": reason });
      tr.appendChild(el("td", {}, reason));
      tr.appendChild(el("td", { "data-field": "count" }, String(count)));
      body.appendChild(tr);
    }
  }

  function drawKey() {
    if (selected === null) return;
    const view = board.keys[selected];
    const row = last(view.metrics) || {};
    const tiles = document.getElementById("tiles");
    tiles.replaceChildren();
    tile(tiles, "acc", "accuracy", fmt(row.acc));
    tile(tiles, "r_acc", "rolling accuracy", fmt(row.r_acc));
    tile(tiles, "bal_acc", "balanced accuracy", fmt(row.bal_acc));
    tile(tiles, "macro_f1", "macro F1", fmt(row.macro_f1));
    tile(tiles, "log_loss", "log loss", fmt(row.log_loss));
    tile(tiles, "scored", "scored", fmt(row.scored));
    tile(tiles, "learned", "learned", fmt(row.learned));
    tile(tiles, "model_version", "model version", fmt(row.model_version));
    tile(tiles, "serving", "serving model", row.champion || "main");
    tile(tiles, "drifts", "drifts", fmt(row.drifts));
    tile(tiles, "label_requests", "label requests", fmt(view.label_requests));
    tile(tiles, "waiting_share", "waiting for a label", fmt(row.waiting_share, 3));
    if (row.active_limit !== null && row.active_limit !== undefined) {
      tile(tiles, "active", "label budget used", `${row.active_used} / ${row.active_limit}`);
    }
    tile(tiles, "dead_letters", "dead letters", fmt(total(view.dead_letters)));
    tile(tiles, "events_per_s", "events / s", fmt(row.events_per_s, 0));
    tile(tiles, "learn_p99", "learn p99 (µs)", fmt(row.learn_p99, 1));
    tile(tiles, "model_kb", "model size (kB)",
      row.model_bytes === null || row.model_bytes === undefined ? "–"
        : fmt(row.model_bytes / 1000, 1));
    drawCharts(view);
    drawMarkers(view);
    drawDeadLetters("#key-dead-letters", view.dead_letters);
  }

  function drawMarkers(view) {
    const body = document.querySelector("#markers tbody");
    body.replaceChildren();
    if (!view.markers.length) {
      body.appendChild(el("tr", {})).appendChild(el("td", { colspan: "5" }, "none"));
    }
    for (const marker of view.markers) {
      const tr = el("tr", { "data-type": marker.type });
      for (const text of [fmt(marker.t, 3), marker.type, fmt(marker.scored), marker.id || "",
                          marker.detail || ""]) {
        tr.appendChild(el("td", {}, text));
      }
      body.appendChild(tr);
    }
  }

  // --- charts ---------------------------------------------------------------------------

  function timed(rows) { return rows.filter((r) => r.t !== null && r.t !== undefined); }

  function chartSpecs(view) {
    const rows = timed(view.metrics);
    const specs = [];
    if (!rows.length) return specs;
    const xs = rows.map((r) => r.t);
    const pipelines = [...new Set(rows.flatMap((r) => Object.keys(r.pipelines || {})))].sort();
    specs.push({ id: "accuracy", title: "Cumulative: accuracy, balanced accuracy, macro F1",
      xs, markers: true, range: [0, 1], series: [
        ["accuracy", rows.map((r) => r.acc), {}],
        ["balanced accuracy", rows.map((r) => r.bal_acc), {}],
        ["macro F1", rows.map((r) => r.macro_f1), {}]] });
    if (rows.some((r) => r.r_acc !== null) || pipelines.length) {
      const rolling = [
        ["accuracy", rows.map((r) => r.r_acc), {}],
        ["balanced accuracy", rows.map((r) => r.r_bal_acc), {}],
        ["macro F1", rows.map((r) => r.r_macro_f1), {}],
      ];
      const metric = (rows.find((r) => r.candidate_metric) || {}).candidate_metric || "metric";
      for (const name of pipelines) {
        rolling.push([`${name} (${metric})`,
          rows.map((r) => (r.pipelines && r.pipelines[name] ? r.pipelines[name].value : null)),
          { dash: [6, 3] }]);
      }
      const title = pipelines.length ? "Rolling window, and each candidate pipeline (dashed)"
        : "Rolling window: accuracy, balanced accuracy, macro F1";
      specs.push({ id: "rolling", title, xs, series: rolling, markers: true, range: [0, 1] });
    }
    const classes = [...new Set(rows.flatMap((r) => Object.keys(r.recall || {})))].sort();
    if (classes.length) {
      specs.push({ id: "recall", title: "Per-class recall (rolling)", xs, markers: true,
        range: [0, 1],
        series: classes.map((c) => [`class ${c}`, rows.map((r) => (r.recall || {})[c] ?? null), {}]) });
    }
    if (rows.some((r) => r.log_loss !== null)) {
      specs.push({ id: "log_loss", title: "Log loss", xs, markers: true, series: [
        ["log loss", rows.map((r) => r.log_loss), {}],
        ["rolling log loss", rows.map((r) => r.r_log_loss), {}]] });
    }
    const mix = mixRows(view, rows);
    if (mix.rows.length) {
      const names = [...new Set(mix.rows.flatMap((r) => Object.keys(r.counts)))].sort();
      const shares = names.map((c) => mix.rows.map((r) => {
        const n = total(r.counts);
        return n ? (r.counts[c] || 0) / n : null;
      }));
      // stacked: the i-th series is drawn at the sum of the shares up to class i, widest first
      const stacked = names.map((_, i) => mix.rows.map((__, j) => {
        let sum = 0;
        for (let k = 0; k <= i; k += 1) sum += shares[k][j] || 0;
        return shares[i][j] === null ? null : sum;
      }));
      const series = names.map((c, i) => [`class ${c}`, stacked[i],
        { fill: true, share: shares[i] }]).reverse();
      specs.push({ id: "mix", title: `Trained-on class mix (${mix.source})`,
        xs: mix.rows.map((r) => r.t), series, range: [0, 1] });
    }
    if (rows.some((r) => r.label_lag_p50 !== null || (r.waiting_share || 0) > 0)) {
      specs.push({ id: "labels", title: "Delayed labels", xs, series: [
        ["label delay p50 (ms)", rows.map((r) => r.label_lag_p50), {}],
        ["label delay p99 (ms)", rows.map((r) => r.label_lag_p99), {}],
        ["share waiting for a label", rows.map((r) => r.waiting_share), { scale: "share" }]] });
    }
    if (rows.some((r) => r.predict_p50 !== null && r.predict_p50 !== undefined)) {
      specs.push({ id: "cost", title: "Update time per event (µs)", xs, markers: true, series: [
        ["predict p50", rows.map((r) => r.predict_p50), {}],
        ["predict p99", rows.map((r) => r.predict_p99), { dash: [6, 3] }],
        ["learn p50", rows.map((r) => r.learn_p50), {}],
        ["learn p99", rows.map((r) => r.learn_p99), { dash: [6, 3] }]] });
    }
    if (rows.some((r) => r.model_bytes !== null && r.model_bytes !== undefined)) {
      specs.push({ id: "size", title: "Model and state size (kB)", xs, markers: true, series: [
        ["model", rows.map((r) => (r.model_bytes === null ? null : r.model_bytes / 1000)), {}],
        ["key's state", rows.map((r) => (r.state_bytes === null ? null : r.state_bytes / 1000)),
          {}]] });
    }
    if (rows.some((r) => r.spread_acc_std !== null && r.spread_acc_std !== undefined)) {
      const stability = [
        ["std of rolling accuracy over recent reports", rows.map((r) => r.spread_acc_std), {}]];
      if (rows.some((r) => r.probe_changed !== null && r.probe_changed !== undefined)) {
        stability.push(["probe predictions changed", rows.map((r) => r.probe_changed),
          { scale: "share" }]);
      }
      specs.push({ id: "stability", title: "Stability", xs, markers: true, series: stability });
    }
    if (rows.some((r) => r.active_limit !== null && r.active_limit !== undefined)) {
      specs.push({ id: "active", title: "Active learning: label budget", xs, series: [
        ["requests in the budget window", rows.map((r) => r.active_used), {}],
        ["limit", rows.map((r) => r.active_limit), { dash: [6, 3] }]] });
    }
    return specs;
  }

  function mixRows(view, rows) {
    const windows = timed(view.mix).slice().sort((a, b) => a.t - b.t);
    if (windows.length) return { rows: windows, source: "per sampling window" };
    const between = rows.filter((r) => total(r.trained_delta) > 0)
      .map((r) => ({ t: r.t, counts: r.trained_delta }));
    return { rows: between, source: "between metrics reports" };
  }

  function markerPlugin(markers) {
    return {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          const [min, max] = [u.scales.x.min, u.scales.x.max];
          ctx.save();
          for (const marker of markers) {
            const style = MARKERS[marker.type];
            if (!style || marker.t === null || marker.t < min || marker.t > max) continue;
            const x = Math.round(u.valToPos(marker.t, "x", true));
            ctx.strokeStyle = style.color;
            ctx.lineWidth = 2 * devicePixelRatio;
            ctx.setLineDash(style.dash.map((d) => d * devicePixelRatio));
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          }
          ctx.restore();
        }],
      },
    };
  }

  function drawCharts(view) {
    const box = document.getElementById("charts");
    const specs = chartSpecs(view);
    const wanted = new Set(specs.map((s) => s.id));
    for (const id of Object.keys(charts)) {
      if (!wanted.has(id) || charts[id].key !== selected) {
        charts[id].plot.destroy();
        charts[id].node.remove();
        delete charts[id];
      }
    }
    for (const spec of specs) {
      const data = [spec.xs, ...spec.series.map((s) => s[1])];
      const signature = spec.series.map((s) => s[0]).join("|");
      const existing = charts[spec.id];
      if (existing && existing.signature === signature) {
        existing.markers.length = 0;
        existing.markers.push(...view.markers);
        existing.plot.setData(data);
        continue;
      }
      if (existing) { existing.plot.destroy(); existing.node.remove(); }
      const node = el("div", { class: "chart", "data-chart": spec.id });
      node.appendChild(el("h4", {}, spec.title));
      box.appendChild(node);
      const markers = view.markers.slice();
      const timeAxis = spec.xs.length && spec.xs[0] > 1e8;
      const series = [{ label: timeAxis ? "event time" : "event time (s)" }];
      spec.series.forEach(([label, , options], i) => {
        const color = COLORS[i % COLORS.length];
        const entry = { label, stroke: color, width: 1.5, spanGaps: true,
                        scale: options.scale || "y" };
        if (options.dash) entry.dash = options.dash;
        if (options.fill) { entry.fill = color + "99"; entry.width = 1; }
        if (options.share) {
          entry.value = (u, v, si, idx) => (idx === null || options.share[idx] === null ? "–"
            : fmt(options.share[idx], 3));
        }
        series.push(entry);
      });
      const scales = { x: { time: timeAxis } };
      if (spec.range) scales.y = { range: spec.range };
      const axes = [{}, { scale: "y" }];
      if (spec.series.some((s) => s[2].scale === "share")) {
        scales.share = { range: [0, 1] };
        axes.push({ scale: "share", side: 1, grid: { show: false } });
      }
      const opts = { width: Math.max(node.clientWidth - 16, 320), height: 240, series, scales,
        axes, plugins: spec.markers ? [markerPlugin(markers)] : [] };
      const plot = new uPlot(opts, data, node);
      if (spec.markers && view.markers.length) {
        const legend = el("div", { class: "legend-markers" });
        for (const [type, style] of Object.entries(MARKERS)) {
          if (view.markers.some((m) => m.type === type)) {
            const span = el("span", {}, `┃ ${style.label}`);
            span.style.color = style.color;
            legend.appendChild(span);
          }
        }
        node.appendChild(legend);
      }
      charts[spec.id] = { plot, node, signature, markers, key: selected, spec };
    }
  }

  window.addEventListener("resize", () => {
    for (const chart of Object.values(charts)) {
      chart.plot.setSize({ width: Math.max(chart.node.clientWidth - 16, 320), height: 240 });
    }
  });

  // --- data -------------------------------------------------------------------------------

  async function load() {
    const response = await fetch("api/snapshot", { cache: "no-store" });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    board = await response.json();
    draw();
  }

  function follow() {
    if (events) events.close();
    events = new EventSource(`api/events?since=${board.seq}`);
    events.onopen = () => setStatus("live: following the run");
    events.onmessage = (message) => {
      const update = JSON.parse(message.data);
      if (!apply(update.patches)) { restart(); return; }
      queueDraw();
    };
    events.onerror = () => {
      setStatus("lost the connection to the dashboard server; trying again…", true);
      events.close();
      setTimeout(restart, 2000);
    };
  }

  async function restart() {
    try {
      await load();
      follow();
    } catch (error) {
      setStatus(`cannot load the dashboard's data: ${error.message}; trying again…`, true);
      setTimeout(restart, 2000);
    }
  }

  // what the charts plot, by chart: series labels and data (for tests and the console)
  const plotted = () => Object.fromEntries(Object.entries(charts).map(([id, chart]) =>
    [id, { labels: chart.plot.series.map((s) => s.label), data: chart.plot.data }]));

  window.stratiflow = { board: () => board, selected: () => selected, plotted,
                        select: (key) => { selected = key; chosen = true; draw(); } };

  if (embedded) {
    try {
      board = JSON.parse(embedded.textContent);
      setStatus(`report: ${board.report ? board.report.title : "snapshot"}`);
      draw();
    } catch (error) {
      setStatus(`cannot read the report's data: ${error.message}`, true);
    }
  } else {
    restart();
  }
})();
