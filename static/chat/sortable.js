// Sortable tables: a click on a column heading sorts the rows by it (again: the other way).
// Cells may carry their sort value in data-value; headings say data-type="number" or "text".

export function makeSortable(table) {
  const headings = Array.from(table.tHead.rows[0].cells);
  headings.forEach((th, column) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort-button";
    button.append(...th.childNodes);
    th.append(button);
    button.addEventListener("click", () => {
      const descending = th.getAttribute("aria-sort") !== "descending";
      for (const other of headings) other.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      sortBy(table, column, th.dataset.type === "number", descending);
    });
  });
}

function sortBy(table, column, numeric, descending) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows).filter((row) => row.cells.length > column);
  const key = (row) => {
    const cell = row.cells[column];
    const raw = cell.dataset.value ?? cell.textContent.trim();
    return numeric ? Number(raw) : raw.toLowerCase();
  };
  rows.sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    const order = x < y ? -1 : x > y ? 1 : 0;
    return descending ? -order : order;
  });
  body.append(...rows);
}
