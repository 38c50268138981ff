// Trellis UI: moving rows by drag and by keyboard. Every move posts the
// page's own move form (the CSRF token comes from the page), so what the
// script does is exactly what a person can do without it.
"use strict";

function csrf() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

// The row a tree item shows, its parent row ("" at the top level).
function rowOf(item) { return item.dataset.row; }
function parentOf(item) {
  const parent = item.parentElement.closest("li[data-row]");
  return parent ? rowOf(parent) : "";
}
function siblings(item) {
  return Array.from(item.parentElement.children).filter((e) => e.matches("li[data-row]"));
}

function move(tree, key, under, after) {
  const form = document.createElement("form");
  form.method = "post";
  form.action = "/structures/" + tree.dataset.structure + "/move";
  const fields = { csrf: csrf(), key: key, under: under, after: after || "", back: tree.dataset.back };
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }
  document.body.appendChild(form);
  form.submit();
}

function keyboardMove(tree, item, key) {
  const around = siblings(item);
  const at = around.indexOf(item);
  switch (key) {
    case "ArrowDown":
      if (at + 1 < around.length) move(tree, rowOf(item), parentOf(item), rowOf(around[at + 1]));
      break;
    case "ArrowUp":
      if (at >= 2) move(tree, rowOf(item), parentOf(item), rowOf(around[at - 2]));
      break;
    case "ArrowRight":
      if (at >= 1) move(tree, rowOf(item), rowOf(around[at - 1]), "");
      break;
    case "ArrowLeft": {
      const parent = item.parentElement.closest("li[data-row]");
      if (parent) move(tree, rowOf(item), parentOf(parent), rowOf(parent));
      break;
    }
  }
}

function focusNext(item, step) {
  const all = Array.from(document.querySelectorAll(".tree li[data-row]"));
  const next = all[all.indexOf(item) + step];
  if (next) next.focus();
}

document.addEventListener("DOMContentLoaded", () => {
  const tree = document.querySelector(".tree[data-structure]");
  if (!tree) return;
  let dragged = null;
  tree.addEventListener("dragstart", (event) => {
    const item = event.target.closest("li[data-row]");
    if (!item) return;
    dragged = item;
    event.dataTransfer.setData("text/plain", rowOf(item));
    event.dataTransfer.effectAllowed = "move";
  });
  tree.addEventListener("dragover", (event) => {
    const target = event.target.closest("li[data-row]");
    if (!target || !dragged || target === dragged || dragged.contains(target)) return;
    event.preventDefault();
    for (const e of tree.querySelectorAll(".drop")) e.classList.remove("drop");
    target.classList.add("drop");
  });
  tree.addEventListener("drop", (event) => {
    const target = event.target.closest("li[data-row]");
    if (!target || !dragged || target === dragged || dragged.contains(target)) return;
    event.preventDefault();
    // Onto a row: under it. With Shift: right after it, beside it.
    if (event.shiftKey) move(tree, rowOf(dragged), parentOf(target), rowOf(target));
    else move(tree, rowOf(dragged), rowOf(target), "");
  });
  tree.addEventListener("keydown", (event) => {
    const item = event.target.closest("li[data-row]");
    if (!item || event.target !== item) return;
    if (event.altKey && event.key.startsWith("Arrow")) {
      event.preventDefault();
      keyboardMove(tree, item, event.key);
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      focusNext(item, event.key === "ArrowDown" ? 1 : -1);
    }
  });
  // After a move, the moved row has the focus.
  const moved = decodeURIComponent(location.hash.replace(/^#moved-/, "").replace(/\+/g, " "));
  if (location.hash.startsWith("#moved-")) {
    const item = Array.from(tree.querySelectorAll("li[data-row]")).find((e) => rowOf(e) === moved);
    if (item) { item.focus(); item.scrollIntoView({ block: "center" }); }
  }
});
