// Tables marked class="stack" become cards on a phone (app.css): each cell is labelled with its column's
// header in data-label. Rows that htmx swaps in later are labelled when they settle.
(() => {
  const label = (table) => {
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    for (const row of table.querySelectorAll("tbody > tr, tfoot > tr")) {
      // Every cell but a row's own header (its first, as in a totals row) is labelled.
      [...row.children].forEach((cell, i) => {
        const header = cell.tagName === "TH" && (i === 0 || cell.scope === "row");
        if (heads[i] && !header && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", heads[i]);
      });
    }
    table.classList.add("stacked");
  };
  const all = () => document.querySelectorAll("table.stack").forEach(label);
  document.addEventListener("DOMContentLoaded", all);
  // afterSwap labels new rows before the browser paints them; afterSettle again after a morph settles.
  document.addEventListener("htmx:afterSwap", all);
  document.addEventListener("htmx:afterSettle", all);
})();
