// The settings page's spending chart: the last 30 days, a bar a day, from the page's
// json_script data. Chart.js is a classic script (window.Chart), loaded before this module.
import { barChart } from "./charts.js";

const data = JSON.parse(document.querySelector("#spend-data").textContent);
barChart(document.querySelector("#spend-chart"), {
  labels: data.days.map((day) => day.slice(5)), // MM-DD
  values: data.cost.map(Number),
  label: "USD",
  money: true,
});
