// troupe web UI: live updates. Every page works without this script; it only keeps the
// open page current (docs/web.md). Text from the node goes into the page with textContent
// or setAttribute, never as markup.
(function () {
  'use strict';

  // Run states after which the run stream ends (RunState::is_finished).
  var FINISHED = ['succeeded', 'failed', 'cancelled', 'compensated', 'compensation_failed',
    'budget_exhausted'];
  function each(sel, f, root) {
    Array.prototype.forEach.call((root || document).querySelectorAll(sel), f);
  }

  // Replaces an element's `state-*` class (SVG elements too: className is not a string
  // there).
  function setState(el, state) {
    var cls = (el.getAttribute('class') || '').split(/\s+/).filter(function (c) {
      return c && c.indexOf('state-') !== 0;
    });
    cls.push('state-' + state);
    el.setAttribute('class', cls.join(' '));
  }

  // ---- the run page: /runs/{run} ----
  function followRun(page) {
    if (!window.EventSource) return;
    var run = page.getAttribute('data-run-page');
    var nodes = new Map();
    each('#dag g.node[data-task]', function (g) { nodes.set(g.getAttribute('data-task'), g); });
    var rows = new Map();
    each('#tasks tr[data-task]', function (tr) { rows.set(tr.getAttribute('data-task'), tr); });
    var dag = document.getElementById('dag');
    // A summarised graph (one node per group of tasks) is redrawn by the server: fetched
    // again at most every 2 s while tasks move.
    var summarised = dag && (dag.getAttribute('class') || '').indexOf('summary') >= 0;
    var refreshDue = false;
    var refreshing = false;
    var lastRefresh = 0;

    // Only the tasks this page shows: its table's rows (which hold every node of a full
    // graph; a summarised graph is re-fetched instead).
    var from = page.getAttribute('data-rows-from');
    var to = page.getAttribute('data-rows-to');
    var range = (from !== null && to !== null)
      ? '?from=' + encodeURIComponent(from) + '&to=' + encodeURIComponent(to) : '';
    var es = new EventSource('/api/runs/' + encodeURIComponent(run) + '/stream' + range);
    es.addEventListener('run', function (ev) {
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      apply(f);
      if (FINISHED.indexOf(f.state) >= 0) es.close();
    });

    function apply(f) {
      each('[data-run-state]', function (el) {
        el.setAttribute('data-run-state', f.state);
        el.textContent = f.state;
      });
      var s = f.summary || {};
      each('[data-summary]', function (el) {
        var k = el.getAttribute('data-summary');
        if (k in s && k !== 'finished_at') el.textContent = s[k] === null ? '–' : String(s[k]);
        if (k === 'finished_at' && s.finished_at) el.textContent = s.finished_at.replace('T', ' ').slice(0, 19);
      });
      var total = s.tasks_total || 0;
      each('[data-progress]', function (el) {
        var n = el.getAttribute('data-progress') === 'ok' ? s.tasks_succeeded : s.tasks_failed;
        el.style.width = (total ? (100 * (n || 0) / total) : 0).toFixed(1) + '%';
      });
      if (FINISHED.indexOf(f.state) >= 0) {
        each('form.cancel, p.cancel', function (el) { el.remove(); });
      }
      var moved = false;
      Object.keys(f.tasks || {}).forEach(function (id) {
        var t = f.tasks[id];
        moved = true;
        var g = nodes.get(id);
        if (g) {
          setState(g, t.state);
          var title = g.querySelector('title');
          if (title) title.textContent = id + ' · ' + t.state;
        }
        var tr = rows.get(id);
        if (tr) {
          setState(tr, t.state);
          var td = tr.querySelector('td.state');
          if (td) td.textContent = t.state;
          var at = tr.querySelector('td.attempts');
          if (at) at.textContent = String(t.attempts);
        }
      });
      if (summarised && moved) {
        refreshDue = true;
        refreshGraph();
      }
    }

    function refreshGraph() {
      if (refreshing || !refreshDue) return;
      var wait = lastRefresh + 2000 - Date.now();
      if (wait > 0) { setTimeout(refreshGraph, wait); return; }
      refreshing = true;
      refreshDue = false;
      lastRefresh = Date.now();
      fetch('/runs/' + encodeURIComponent(run) + '/graph', { credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (text) {
          if (!text) return;
          // Parsed as SVG (the server escaped every text in it), never as HTML.
          var doc = new DOMParser().parseFromString(text, 'image/svg+xml');
          var fresh = doc.documentElement;
          var old = document.getElementById('dag');
          if (old && fresh && fresh.getAttribute('id') === 'dag') {
            old.replaceWith(document.importNode(fresh, true));
          }
        })
        .catch(function () {})
        .then(function () { refreshing = false; if (refreshDue) refreshGraph(); });
    }
  }

  // ---- the task page: follow the log while the attempt runs ----
  function followLog(pre) {
    var url = pre.getAttribute('data-log-url');
    var taskUrl = pre.getAttribute('data-task-url');
    var size = parseInt(pre.getAttribute('data-log-size') || '0', 10) || 0;
    var status = document.getElementById('log-status');
    var MAX_CHARS = 4 * 1024 * 1024;
    var ticks = 0;
    var busy = false;

    function atBottom() {
      return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    }

    function append(text) {
      if (!text) return;
      var stick = atBottom();
      pre.appendChild(document.createTextNode(text));
      if (pre.textContent.length > MAX_CHARS) {
        // Keep the browser responsive on huge logs: drop the oldest text.
        pre.textContent = pre.textContent.slice(-MAX_CHARS / 2);
      }
      if (stick) window.scrollTo(0, document.body.scrollHeight);
    }

    function pollLog() {
      return fetch(url + '&offset=' + size, { credentials: 'same-origin' }).then(function (r) {
        if (!r.ok) return;
        var end = parseInt(r.headers.get('X-Log-Size') || '', 10);
        return r.text().then(function (text) {
          if (!isNaN(end)) size = end; else size += new Blob([text]).size;
          append(text);
        });
      });
    }

    function pollState() {
      return fetch(taskUrl, { credentials: 'same-origin' }).then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (t) {
        if (t && t.state !== 'running') {
          // One last read, then the page as it is now (attempts table, outcome).
          return pollLog().then(function () {
            clearInterval(timer);
            if (status) status.textContent = 'the attempt ended (' + t.state + '); reloading';
            setTimeout(function () { window.location.reload(); }, 1000);
          });
        }
      });
    }

    var timer = setInterval(function () {
      if (busy) return;
      busy = true;
      ticks++;
      var p = pollLog();
      if (ticks % 3 === 0) p = p.then(pollState);
      p.catch(function () {}).then(function () { busy = false; });
    }, 1000);
  }

  function start() {
    var page = document.querySelector('[data-run-page]');
    if (page) followRun(page);
    var pre = document.querySelector('pre#log[data-follow]');
    if (pre && window.fetch) followLog(pre);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
