// Aether dashboard: the live log tail and the latency chart. Loaded as a file (the
// Content-Security-Policy allows no inline script); htmx does the partial refreshes.
(function () {
  "use strict";

  var csrf = document.querySelector('meta[name="csrf-token"]');
  document.addEventListener("htmx:configRequest", function (event) {
    if (csrf) event.detail.headers["X-CSRF-Token"] = csrf.content;
  });

  // ---- logs: follow the app's output through the cursor API -------------------------
  // Every line carries a cursor; a dropped or paused stream resumes after the last line
  // received, so nothing is lost and nothing is shown twice.
  function LogTail(box) {
    this.box = box;
    this.base = box.dataset.stream;
    this.status = document.getElementById("log-status");
    this.count = document.getElementById("log-count");
    this.filter = document.getElementById("log-filter");
    this.stream = document.getElementById("log-stream");
    this.pauseButton = document.getElementById("log-pause");
    this.lines = [];
    this.cursor = null;
    this.since = null;
    this.paused = false;
    this.retries = 0;
    this.controller = null;
    this.generation = 0;
  }
  LogTail.MAX_LINES = 5000;

  LogTail.prototype.url = function () {
    var query = new URLSearchParams({ follow: "true" });
    if (this.cursor) query.set("cursor", this.cursor);
    else if (this.since) query.set("since", this.since);
    else query.set("tail", "200");
    return this.base + "?" + query.toString();
  };

  LogTail.prototype.say = function (text, kind) {
    this.status.textContent = text;
    this.status.className = "status " + (kind || "");
  };

  LogTail.prototype.connect = function () {
    var self = this;
    var generation = ++this.generation;
    var controller = new AbortController();
    this.controller = controller;
    this.say(this.retries ? "Reconnecting…" : "Connecting…", this.retries ? "down" : "");
    fetch(this.url(), { signal: controller.signal, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/ui/signin?next=" + encodeURIComponent(window.location.pathname));
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        self.retries = 0;
        self.say("Live", "live");
        return self.read(response.body.getReader(), generation);
      })
      .catch(function () { /* a dropped stream: resumed below */ })
      .then(function () { self.ended(generation); });
  };

  LogTail.prototype.read = function (reader, generation) {
    var self = this;
    var decoder = new TextDecoder();
    var pending = "";
    function step(chunk) {
      if (chunk.done || generation !== self.generation) return null;
      pending += decoder.decode(chunk.value, { stream: true });
      var newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        var raw = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (raw.trim()) self.receive(JSON.parse(raw));
      }
      return reader.read().then(step);
    }
    return reader.read().then(step);
  };

  LogTail.prototype.ended = function (generation) {
    if (generation !== this.generation || this.paused) return;
    this.retries = Math.min(this.retries + 1, 6);
    this.say("Connection lost — reconnecting…", "down");
    var self = this;
    window.setTimeout(function () {
      if (generation === self.generation && !self.paused) self.connect();
    }, 300 * this.retries);
  };

  LogTail.prototype.receive = function (line) {
    if (line.cursor) this.cursor = line.cursor;
    this.lines.push(line);
    if (this.lines.length > LogTail.MAX_LINES) {
      var dropped = this.lines.shift();
      if (dropped.node && dropped.node.parentNode) dropped.node.remove();
    }
    if (this.matches(line)) this.show(line, true);
    this.counted();
  };

  LogTail.prototype.matches = function (line) {
    var text = this.filter.value.toLowerCase();
    var stream = this.stream.value;
    return (!stream || line.stream === stream) && (!text || line.line.toLowerCase().indexOf(text) >= 0);
  };

  LogTail.prototype.show = function (line, follow) {
    var atBottom = this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight < 40;
    var row = document.createElement("div");
    row.className = "logline " + line.stream;
    row.dataset.cursor = line.cursor || "";
    var time = document.createElement("time");
    time.dateTime = line.ts;
    time.textContent = (line.ts || "").replace("T", " ").slice(0, 19);
    var stream = document.createElement("span");
    stream.className = "stream";
    stream.textContent = line.stream;
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = line.line;
    row.append(time, stream, text);
    line.node = row;
    this.box.appendChild(row);
    if (follow && atBottom) this.box.scrollTop = this.box.scrollHeight;
  };

  LogTail.prototype.redraw = function () {
    this.box.replaceChildren();
    for (var i = 0; i < this.lines.length; i++) {
      if (this.matches(this.lines[i])) this.show(this.lines[i], false);
      else this.lines[i].node = null;
    }
    this.box.scrollTop = this.box.scrollHeight;
    this.counted();
  };

  LogTail.prototype.counted = function () {
    var shown = this.box.childElementCount;
    this.count.textContent = shown + " of " + this.lines.length + " lines shown";
  };

  LogTail.prototype.pause = function () {
    this.paused = !this.paused;
    this.pauseButton.textContent = this.paused ? "Resume" : "Pause";
    this.pauseButton.setAttribute("aria-pressed", String(this.paused));
    if (this.paused) {
      this.generation++;
      if (this.controller) this.controller.abort();
      this.say("Paused — new lines are picked up on resume", "");
    } else {
      this.connect();
    }
  };

  LogTail.prototype.restart = function (since) {
    this.generation++;
    if (this.controller) this.controller.abort();
    this.lines = [];
    this.cursor = null;
    this.since = since;
    this.retries = 0;
    this.paused = false;
    this.pauseButton.textContent = "Pause";
    this.redraw();
    this.connect();
  };

  function startLogs(box) {
    var tail = new LogTail(box);
    tail.pauseButton.addEventListener("click", function () { tail.pause(); });
    tail.filter.addEventListener("input", function () { tail.redraw(); });
    tail.stream.addEventListener("change", function () { tail.redraw(); });
    document.getElementById("log-jump").addEventListener("submit", function (event) {
      event.preventDefault();
      var value = document.getElementById("log-since").value;
      if (value) tail.restart(new Date(value + (value.length === 16 ? ":00Z" : "Z")).toISOString());
    });
    document.getElementById("log-live").addEventListener("click", function () { tail.restart(null); });
    window.aetherLogTail = tail; // for the browser tests and the curious
    tail.connect();
  }

  // ---- deploy latency chart ----------------------------------------------------------
  function startChart(element) {
    var data = JSON.parse(document.getElementById("latency-data").textContent);
    if (typeof window.uPlot !== "function") return;
    var series = [
      {},
      { label: "p50 (s)", stroke: "#3b3fd8", width: 2, points: { show: true, size: 6 } },
      { label: "p95 (s)", stroke: "#c2410c", width: 2, points: { show: true, size: 6 } },
    ];
    var columns = [data.x, data.p50, data.p95];
    if (data.baseline) {
      series.push({ label: "server-side build baseline (s)", stroke: "#4a5567", width: 2, dash: [6, 4], points: { show: false } });
      columns.push(data.baseline);
    }
    var height = 300;
    var plot = new window.uPlot({
      width: element.clientWidth || 600,
      height: height,
      series: series,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, (max || 1) * 1.15)]; } } },
      axes: [{}, { label: "seconds" }],
    }, columns, element);
    window.addEventListener("resize", function () {
      plot.setSize({ width: element.clientWidth, height: height });
    });
  }

  function start() {
    var log = document.getElementById("log");
    if (log) startLogs(log);
    var chart = document.getElementById("latency-chart");
    if (chart) startChart(chart);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
