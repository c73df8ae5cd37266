// The graphs panel of the host and VM pages (templates/graphs/panel.jinja2): each card
// fetches its graph from the JSON API and draws it with uPlot; the range switcher redraws
// every card; "No data yet" when collectd has not reported; graphs refresh every minute.
(function () {
  'use strict';

  var COLORS = ['#0066cc', '#3e8635', '#f0ab00', '#c9190b', '#8476d1', '#009596', '#ec7a08', '#6a6e73'];
  var REFRESH_MS = 60000;

  function scaled(value, base, units) {
    var i = 0;
    var v = Math.abs(value);
    while (v >= base && i < units.length - 1) { v /= base; value /= base; i++; }
    return (Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3).replace(/\.?0+$/, '')) + ' ' + units[i];
  }

  function format(unit, value) {
    if (value === null || value === undefined) { return '—'; }
    if (unit === '%') { return value.toFixed(1) + ' %'; }
    if (unit === 'bytes') { return scaled(value, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB']); }
    if (unit === 'bytes/s') { return scaled(value, 1024, ['B/s', 'KiB/s', 'MiB/s', 'GiB/s']); }
    return value.toFixed(2);
  }

  // ticks of byte axes at 1, 2, 4 … 512 B, KiB, MiB …, not at 1.86 GiB
  var BINARY_INCRS = [];
  for (var power = 0; power < 6; power++) {
    for (var m = 1; m < 1024; m *= 2) { BINARY_INCRS.push(m * Math.pow(1024, power)); }
  }

  // uPlot wants one x array and one y array per series, aligned on x
  function columns(series) {
    var seen = {};
    series.forEach(function (s) { s.points.forEach(function (p) { seen[p[0]] = true; }); });
    var xs = Object.keys(seen).map(Number).sort(function (a, b) { return a - b; });
    var at = {};
    xs.forEach(function (t, i) { at[t] = i; });
    var data = [xs];
    series.forEach(function (s) {
      var ys = xs.map(function () { return null; });
      s.points.forEach(function (p) { ys[at[p[0]]] = p[1]; });
      data.push(ys);
    });
    return data;
  }

  function show(card, state, message) {
    card.setAttribute('data-state', state);
    card.querySelector('[data-role=plot]').hidden = state !== 'drawn';
    card.querySelector('[data-role=empty]').hidden = state !== 'empty';
    var error = card.querySelector('[data-role=error]');
    error.hidden = state !== 'error';
    error.querySelector('[data-testid=graph-error]').textContent = message || '';
  }

  function draw(card, graph) {
    var holder = card.querySelector('[data-role=plot]');
    if (card.fcPlot) { card.fcPlot.destroy(); card.fcPlot = null; }
    if (graph.no_data) { show(card, 'empty'); return; }
    show(card, 'drawn');
    var unit = graph.series.length ? graph.series[0].unit : '';
    var opts = {
      width: Math.max(240, holder.clientWidth || card.clientWidth - 32),
      height: 220,
      series: [{}].concat(graph.series.map(function (s, i) {
        return {
          label: s.name,
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          spanGaps: false,
          value: function (u, v) { return format(s.unit, v); }
        };
      })),
      scales: {
        x: {time: true},
        y: {range: function (u, min, max) {
          var top = unit === '%' ? Math.max(100, max || 0) : (max > 0 ? max * 1.1 : 1);
          return [0, top];
        }}
      },
      axes: [
        {},
        {size: 80, values: function (u, ticks) { return ticks.map(function (v) { return format(unit, v); }); }}
      ]
    };
    if (unit === 'bytes' || unit === 'bytes/s') { opts.axes[1].incrs = BINARY_INCRS; }
    card.fcPlot = new uPlot(opts, columns(graph.series), holder);
  }

  function load(card, range) {
    var url = card.getAttribute('data-graph-url') + '?range=' + encodeURIComponent(range);
    card.setAttribute('data-range', range);
    return fetch(url, {credentials: 'same-origin', headers: {'Accept': 'application/json'}})
      .then(function (response) {
        return response.json().then(function (body) { return {ok: response.ok, body: body}; });
      })
      .then(function (answer) {
        if (card.getAttribute('data-range') !== range) { return; }  // switched meanwhile
        if (answer.ok) { draw(card, answer.body); return; }
        var error = answer.body && answer.body.error;
        show(card, 'error', error ? error.message : 'The graph could not be read.');
      })
      .catch(function () { show(card, 'error', 'The graph could not be loaded; check your connection.'); });
  }

  function setUp(panel) {
    var range = panel.getAttribute('data-default-range');
    var cards = Array.prototype.slice.call(panel.querySelectorAll('[data-graph-url]'));
    var buttons = Array.prototype.slice.call(panel.querySelectorAll('[data-range]')).filter(function (b) {
      return b.tagName === 'BUTTON';
    });
    function loadAll() { cards.forEach(function (card) { load(card, range); }); }
    buttons.forEach(function (button) {
      button.addEventListener('click', function () {
        range = button.getAttribute('data-range');
        buttons.forEach(function (b) {
          var on = b === button;
          b.classList.toggle('pf-m-selected', on);
          b.setAttribute('aria-pressed', on ? 'true' : 'false');
        });
        loadAll();
      });
    });
    if (window.ResizeObserver) {
      var observer = new ResizeObserver(function () {
        cards.forEach(function (card) {
          var holder = card.querySelector('[data-role=plot]');
          if (card.fcPlot && holder.clientWidth) {
            card.fcPlot.setSize({width: holder.clientWidth, height: 220});
          }
        });
      });
      cards.forEach(function (card) { observer.observe(card); });
    }
    loadAll();
    setInterval(function () { if (!document.hidden) { loadAll(); } }, REFRESH_MS);
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll('[data-testid=graphs]'), setUp);
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
