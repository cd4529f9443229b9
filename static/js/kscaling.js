// K-scaling chart (templates/evaluation/_kscaling.html): a static file so the CSP needs no inline script.
(function () {
  function draw() {
    var source = document.getElementById("kscaling-data");
    var canvas = document.getElementById("kscaling-chart");
    if (!source || !canvas || !window.Chart || canvas.dataset.drawn) return;
    canvas.dataset.drawn = "1";
    var d = JSON.parse(source.textContent);
    var band = "rgba(36, 86, 199, 0.14)";
    var sets = [
      { label: "interval-low", data: d.low, borderWidth: 0, pointRadius: 0, fill: false, backgroundColor: band, spanGaps: true },
      { label: "95% interval", data: d.high, borderWidth: 0, pointRadius: 0, fill: "-1", backgroundColor: band, spanGaps: true },
      { label: d.name, data: d.ours, borderColor: "#2456c7", backgroundColor: "#2456c7", tension: 0.2, spanGaps: true }
    ];
    if (d.first_k && d.first_k.some(function (v) { return v !== null; })) {
      sets.push({ label: d.first_k_name, data: d.first_k, borderColor: "#c7562b", backgroundColor: "#c7562b", borderDash: [2, 3], tension: 0.2, spanGaps: true });
    }
    if (d.published) {
      sets.push({ label: d.published_name, data: d.published, borderColor: "#8a94a3", backgroundColor: "#8a94a3", borderDash: [6, 4], spanGaps: true });
    }
    new window.Chart(canvas, {
      type: "line",
      data: { labels: d.labels, datasets: sets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: { x: { title: { display: true, text: "K (critiques per step)" } },
                  y: { title: { display: true, text: d.metric + " (%)" } } },
        plugins: { legend: { labels: { filter: function (item) { return item.text !== "interval-low"; } } } }
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
  // A run page that settles (htmx) swaps the finished results, the chart among them, in.
  document.addEventListener("htmx:afterSettle", draw);
})();
