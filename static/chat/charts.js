// Charts for the spending pages, drawn with Chart.js (an npm package served as a static file,
// loaded as a classic script before the modules: it defines window.Chart).

/** Money for an axis or a tooltip: cents, or three significant digits below a cent. */
export function usd(value) {
  if (value === 0) return "$0";
  if (Math.abs(value) >= 0.01) return `$${value.toFixed(2)}`;
  return `$${value.toPrecision(3)}`;
}

/** A bar chart in `canvas`; the chart object, which marks the canvas as drawn. */
export function barChart(canvas, { labels, values, label, money = false, horizontal = false }) {
  const chart = new window.Chart(canvas, {
    type: "bar",
    data: { labels, datasets: [{ label, data: values, backgroundColor: "#4f7cff" }] },
    options: {
      indexAxis: horizontal ? "y" : "x",
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: (item) => (money ? usd(item.raw) : String(item.raw)) } },
      },
      scales: {
        [horizontal ? "x" : "y"]: {
          beginAtZero: true,
          ticks: { callback: (value) => (money ? usd(Number(value)) : value) },
        },
      },
    },
  });
  // What a test (or a person with dev tools) can check: the chart is drawn, and from what.
  canvas.dataset.drawn = String(values.length);
  canvas.dataset.total = String(values.reduce((sum, v) => sum + v, 0));
  return chart;
}
