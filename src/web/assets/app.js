// troupe web UI: live updates. Every page works without this script; it only keeps the
// open page current (docs/web.md). Text from the node goes into the page with textContent
// or setAttribute, never as markup.
(function () {
  'use strict';

  // Run states after which the run stream ends (RunState::is_finished).
  var FINISHED = ['succeeded', 'failed', 'cancelled', 'compensated', 'compensation_failed',
    'budget_exhausted'];
  // Task states, in TaskState::ALL order (the summarised graph's bars).
  var STATES = ['pending', 'awaiting_approval', 'ready', 'running', 'retrying', 'succeeded',
    'failed', 'cancelled', 'suspended', 'upstream_failed', 'compensated'];
  // The state a group is coloured by (graph.rs `pressing`).
  var PRESSING = ['running', 'retrying', 'failed', 'awaiting_approval', 'upstream_failed',
    'cancelled', 'suspended', 'ready', 'pending', 'compensated', 'succeeded'];

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

  // graph.rs `group_key`: the id up to the first `[`, `.` or digit, without trailing `-`/`_`.
  function groupKey(id) {
    var m = /^[^\[.0-9]*/.exec(id);
    var k = (m ? m[0] : '').replace(/[-_]+$/, '');
    return k === '' ? '#' : k;
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
    var summarised = dag && dag.getAttribute('data-grouping') === 'prefix';
    var groups = new Map();
    if (summarised) {
      each('#dag g.group[data-group]', function (g) { groups.set(g.getAttribute('data-group'), g); });
    }
    var known = new Map(); // task id -> state (summarised graph only)
    var counts = new Map(); // group -> {state: n}

    var es = new EventSource('/api/runs/' + encodeURIComponent(run) + '/stream');
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
      var touched = new Set();
      Object.keys(f.tasks || {}).forEach(function (id) {
        var t = f.tasks[id];
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
        if (summarised) {
          var key = groupKey(id);
          var c = counts.get(key);
          if (!c) { c = {}; counts.set(key, c); }
          var old = known.get(id);
          if (old) c[old] = (c[old] || 1) - 1;
          c[t.state] = (c[t.state] || 0) + 1;
          known.set(id, t.state);
          touched.add(key);
        }
      });
      touched.forEach(function (key) { redrawGroup(key); });
    }

    // The first frame lists every task, so counts are complete from then on.
    function redrawGroup(key) {
      var g = groups.get(key);
      var c = counts.get(key);
      if (!g || !c) return;
      var total = 0;
      STATES.forEach(function (st) { total += c[st] || 0; });
      var segs = g.querySelectorAll('rect.seg');
      if (!segs.length) return;
      var x = parseFloat(segs[0].getAttribute('x'));
      var width = 160;
      Array.prototype.forEach.call(segs, function (r) {
        var st = r.getAttribute('data-state');
        var n = c[st] || 0;
        var w = total ? width * n / total : 0;
        r.setAttribute('x', x.toFixed(1));
        r.setAttribute('width', w.toFixed(1));
        r.setAttribute('data-count', String(n));
        x += w;
      });
      for (var i = 0; i < PRESSING.length; i++) {
        if (c[PRESSING[i]] > 0) { setState(g, PRESSING[i]); break; }
      }
      var title = g.querySelector('title');
      if (title) {
        title.textContent = key + ': ' + STATES.filter(function (st) { return c[st] > 0; })
          .map(function (st) { return st + ' ' + c[st]; }).join(', ');
      }
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
