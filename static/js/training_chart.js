// Live loss chart of a training run. The data comes from a json_script element
// inside the htmx-polled panel (#training-metrics); the canvas sits outside it, so
// every poll updates one chart in place instead of drawing a new one.
(function () {
  var chart = null;

  function read() {
    var el = document.getElementById("training-metrics");
    return el ? JSON.parse(el.textContent) : null;
  }

  function datasets(d) {
    return [
      { label: "training loss", data: d.loss, borderColor: "#2456c7", backgroundColor: "#2456c7",
        borderWidth: 2, pointRadius: d.loss.length > 40 ? 0 : 2, tension: 0.15 },
      { label: "validation loss", data: d.eval_loss, borderColor: "#c0392b", backgroundColor: "#c0392b",
        borderWidth: 2, pointRadius: 4, pointStyle: "rectRot", tension: 0.15 }
    ];
  }

  function draw() {
    var canvas = document.getElementById("training-chart");
    var d = read();
    if (!canvas || !d || !window.Chart) return;
    var xmax = Math.max(d.max_steps || 0, 1);
    if (chart) {
      var sets = datasets(d);
      chart.data.datasets[0].data = sets[0].data;
      chart.data.datasets[0].pointRadius = sets[0].pointRadius;
      chart.data.datasets[1].data = sets[1].data;
      chart.options.scales.x.max = xmax;
      chart.update("none");
      return;
    }
    chart = new window.Chart(canvas, {
      type: "line",
      data: { datasets: datasets(d) },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false, parsing: true,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x: { type: "linear", min: 0, max: xmax, title: { display: true, text: "optimizer step" },
               ticks: { precision: 0 } },
          y: { title: { display: true, text: d.kind === "dpo" ? "DPO loss" : "loss (critique tokens)" } }
        },
        plugins: { legend: { position: "bottom" } }
      }
    });
    canvas.dataset.points = String(d.loss.length + d.eval_loss.length);
  }

  function refresh() {
    draw();
    var canvas = document.getElementById("training-chart");
    var d = read();
    if (canvas && d) canvas.dataset.points = String(d.loss.length + d.eval_loss.length);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", refresh); else refresh();
  document.addEventListener("htmx:afterSettle", refresh);
})();
