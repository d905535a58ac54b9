// The admin usage dashboard: three charts from the page's json_script data, and tables sorted
// by a click on a column heading.
import { barChart } from "./charts.js";
import { makeSortable } from "./sortable.js";

const charts = JSON.parse(document.querySelector("#usage-charts").textContent);
const money = (series) => series.cost.map(Number);

barChart(document.querySelector("#chart-days"), {
  labels: charts.days.labels.map((day) => day.slice(5)), // MM-DD
  values: money(charts.days),
  label: "USD",
  money: true,
});
barChart(document.querySelector("#chart-people"), {
  labels: charts.people.labels, values: money(charts.people), label: "USD", money: true,
  horizontal: true,
});
barChart(document.querySelector("#chart-models"), {
  labels: charts.models.labels, values: money(charts.models), label: "USD", money: true,
  horizontal: true,
});

for (const table of document.querySelectorAll("table.sortable")) makeSortable(table);
