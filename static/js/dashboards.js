// Audit dashboards: draws every <canvas data-chart="ID"> from the JSON spec the server
// wrote into <script id="ID" type="application/json"> (json_script). The numbers are
// the server's (the table view and CSV carry the same ones); this file only draws.
// Bars and points may carry 95% intervals (whiskers) and drill-down links (click).
(function () {
  "use strict";

  var INK = "rgba(29, 35, 43, 0.75)";

  // Interval whiskers: a line from lo to hi across each bar's end or point, with caps.
  var whiskers = {
    id: "rprmWhiskers",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      var horizontal = chart.options.indexAxis === "y";
      var valueScale = horizontal ? chart.scales.x : chart.scales.y;
      var lines = chart.config.type === "line";
      var visible = chart.data.datasets.filter(function (ds, i) { return ds.intervals && chart.isDatasetVisible(i); });
      var slot = 0;
      chart.data.datasets.forEach(function (ds, i) {
        if (!ds.intervals || !chart.isDatasetVisible(i)) return;
        // Lines share x positions: shift each series' whiskers a little so they do not overlap.
        var shift = lines ? (slot - (visible.length - 1) / 2) * 5 : 0;
        slot += 1;
        chart.getDatasetMeta(i).data.forEach(function (el, j) {
          var iv = ds.intervals[j];
          if (!iv || iv[0] == null || iv[1] == null) return;
          var a = valueScale.getPixelForValue(iv[0]);
          var b = valueScale.getPixelForValue(iv[1]);
          var thickness = horizontal ? el.height : el.width;
          var cap = Math.max(3, Math.min(7, (thickness || 10) * 0.3));
          ctx.save();
          ctx.strokeStyle = INK;
          ctx.lineWidth = 1.4;
          ctx.beginPath();
          if (horizontal) {
            ctx.moveTo(a, el.y); ctx.lineTo(b, el.y);
            ctx.moveTo(a, el.y - cap); ctx.lineTo(a, el.y + cap);
            ctx.moveTo(b, el.y - cap); ctx.lineTo(b, el.y + cap);
          } else {
            var x = el.x + shift;
            ctx.strokeStyle = lines ? ds.borderColor : INK;
            ctx.moveTo(x, a); ctx.lineTo(x, b);
            ctx.moveTo(x - cap, a); ctx.lineTo(x + cap, a);
            ctx.moveTo(x - cap, b); ctx.lineTo(x + cap, b);
          }
          ctx.stroke();
          ctx.restore();
        });
      });
    }
  };

  function fmt(v, spec, ds) {
    if (v == null) return "no data";
    if (spec.percent) return v.toFixed(1) + "%";
    return (Math.round(v * 1000) / 1000) + (ds.unit || "");
  }

  function tooltipLabel(spec) {
    return function (item) {
      var ds = item.dataset;
      var i = item.dataIndex;
      var text = ds.label + ": " + fmt(item.raw, spec, ds);
      var iv = ds.intervals && ds.intervals[i];
      if (iv && iv[0] != null) text += " (" + fmt(iv[0], spec, ds) + " – " + fmt(iv[1], spec, ds) + ")";
      var kn = ds.counts && ds.counts[i];
      if (kn) text += " · " + kn[0] + " of " + kn[1];
      return text;
    };
  }

  function linkAt(chart, elements) {
    if (!elements.length) return null;
    var el = elements[0];
    var ds = chart.data.datasets[el.datasetIndex];
    return (ds.links && ds.links[el.index]) || null;
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || !window.Chart) return;
    var existing = window.Chart.getChart(canvas);
    if (existing) existing.destroy();
    var spec = JSON.parse(source.textContent);
    var horizontal = !!spec.horizontal;
    var line = spec.kind === "line";
    var datasets = spec.datasets.map(function (d) {
      var ds = {
        label: d.label, data: d.data, intervals: d.intervals, counts: d.counts, links: d.links, unit: d.unit,
        backgroundColor: d.color, borderColor: d.color
      };
      if (line) {
        ds.borderWidth = 2; ds.pointRadius = 3.5; ds.pointHoverRadius = 5; ds.tension = 0.15; ds.spanGaps = true;
      } else {
        ds.borderWidth = 0; ds.maxBarThickness = spec.stacked ? 26 : 16;
        ds.categoryPercentage = 0.8; ds.barPercentage = 0.9;
      }
      return ds;
    });
    var valueAxis = {
      beginAtZero: true, stacked: !!spec.stacked, grid: { color: "#eef0f3" },
      title: { display: true, text: spec.axis, color: "#5f6b7a" },
      ticks: spec.percent ? { callback: function (v) { return v + "%"; } } : { precision: spec.max === 1 ? 1 : 0 }
    };
    if (spec.max != null) valueAxis.max = spec.max;
    else {
      // Leave room for the whiskers: the axis would otherwise end at the longest bar.
      var top = 0;
      spec.datasets.forEach(function (d) {
        (d.intervals || []).forEach(function (iv) { if (iv && iv[1] > top) top = iv[1]; });
      });
      if (top) valueAxis.suggestedMax = top;
    }
    if (spec.min != null) valueAxis.min = spec.min;
    var categoryAxis = { stacked: !!spec.stacked, grid: { display: false }, ticks: { autoSkip: !horizontal, color: "#1d232b" } };
    var box = canvas.parentElement;
    if (spec.height && box) box.style.height = spec.height + "px";
    var chart = new window.Chart(canvas, {
      type: line ? "line" : "bar",
      data: { labels: spec.labels, datasets: datasets },
      options: {
        indexAxis: horizontal ? "y" : "x",
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: line ? { mode: "nearest", intersect: false } : { mode: "nearest", intersect: true },
        scales: horizontal ? { x: valueAxis, y: categoryAxis } : { x: categoryAxis, y: valueAxis },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } },
          tooltip: { callbacks: { label: tooltipLabel(spec) } }
        },
        onClick: function (event, elements, c) {
          var url = linkAt(c, elements);
          if (url) window.location.href = url;
        },
        onHover: function (event, elements, c) {
          c.canvas.style.cursor = linkAt(c, elements) ? "pointer" : "default";
        }
      },
      plugins: [whiskers]
    });
    canvas.dataset.drawn = String(spec.labels.length);
    return chart;
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { drawAll(); });
  else drawAll();
  document.addEventListener("htmx:afterSettle", function (e) { drawAll(e.detail.elt && e.detail.elt.parentNode || document); });
  window.rprmDashboards = { drawAll: drawAll };
})();
