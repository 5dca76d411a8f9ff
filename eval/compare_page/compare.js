"use strict";
// Compare page. Every text from the data goes into the page through textContent / text nodes, never
// innerHTML, so an answer like "<script>" shows as text.
(function () {
  const DATA = JSON.parse(document.getElementById("compare-data").textContent);
  const COLOURS = ["#3b6fb6", "#d9822b", "#3a9a5b", "#b8413c", "#7d5bb5", "#8c6d3f", "#c25a9c", "#6b7280"];
  const BENCH_NAMES = { ucmerced: "UCMerced", aid: "AID", lrben: "LRBEN" };

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "style" || key === "title" || key === "src" || key === "alt") node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  const isNum = (x) => typeof x === "number" && isFinite(x);
  const fmt = (x, digits) => (isNum(x) ? x.toFixed(digits) : x === null || x === undefined ? "—" : String(x));
  const colour = (i) => COLOURS[i % COLOURS.length];

  function renderTable() {
    const table = document.getElementById("metrics-table");
    table.className = "metrics";
    table.append(el("thead", {}, el("tr", {}, ...DATA.columns.map(([, title]) => el("th", { text: title })))));
    const best = {};
    for (const [key] of DATA.columns) {
      if (["ucmerced", "aid", "lrben"].includes(key) || key.startsWith("lrben_")) {
        const values = DATA.rows.map((r) => r[key]).filter(isNum);
        if (values.length > 1) best[key] = Math.max(...values);
      }
    }
    const body = el("tbody");
    for (const row of DATA.rows) {
      body.append(el("tr", {}, ...DATA.columns.map(([key]) => {
        const value = row[key];
        const digits = key.endsWith("seconds") ? 1 : ["kept", "pool", "samples_seen"].includes(key) ? 0 : 2;
        return el("td", { class: best[key] !== undefined && value === best[key] ? "best" : "", text: fmt(value, digits) });
      })));
    }
    table.append(body);
    const notes = document.getElementById("notes");
    for (const note of DATA.notes) notes.append(el("li", { text: note }));
  }

  function barGroup(title, values, max, digits, unit) {
    const group = el("div", { class: "bar-group" }, el("h3", { text: title }));
    values.forEach((value, i) => {
      const width = isNum(value) && max > 0 ? Math.max(0, Math.min(100, 100 * value / max)) : 0;
      group.append(el("div", { class: "bar-row" },
        el("span", { class: "name", title: DATA.runs[i], text: DATA.runs[i] }),
        el("div", { class: "bar-track" }, el("div", { class: "bar-fill", style: "width:" + width.toFixed(1) + "%;background:" + colour(i) })),
        el("span", { class: "value", text: isNum(value) ? value.toFixed(digits) + unit : "—" })));
    });
    return group;
  }

  function renderBars() {
    const scores = document.getElementById("score-bars");
    for (const [bench, info] of Object.entries(DATA.benches)) {
      if (!info.scores.some(isNum)) continue;
      scores.append(barGroup(BENCH_NAMES[bench] || bench, info.scores, 100, 2, "%"));
    }
    if (!scores.children.length) scores.append(el("p", { class: "muted", text: "no benchmark scores in these runs" }));
    const costs = document.getElementById("cost-bars");
    for (const [key, title, unit, digits] of [["samples_seen", "samples seen", "", 0], ["train_seconds", "training time", " s", 1],
      ["selection_seconds", "selection cost", " s", 1]]) {
      const values = DATA.rows.map((r) => r[key]);
      const max = Math.max(0, ...values.filter(isNum));
      costs.append(barGroup(title, values, max, digits, unit));
    }
  }

  function matrixTable(confusion) {
    const labels = confusion.labels, matrix = confusion.matrix;
    const head = el("tr", {}, el("th", { text: "" }), ...labels.map((l) => el("th", { class: "col", text: l })));
    const table = el("table", {}, el("thead", {}, head));
    const body = el("tbody");
    matrix.forEach((row, i) => {
      const total = row.reduce((a, b) => a + b, 0);
      body.append(el("tr", {}, el("th", { text: labels[i] }), ...row.map((count, j) => {
        const share = total ? count / total : 0;
        const hue = i === j ? "31,122,58" : "154,59,59";
        return el("td", { class: i === j ? "diag" : "", title: labels[i] + " → " + labels[j] + ": " + count,
          style: "background:rgba(" + hue + "," + (0.08 + 0.85 * share).toFixed(2) + ")", text: count ? String(count) : "" });
      })));
    });
    table.append(body);
    return table;
  }

  function renderConfusion() {
    const list = document.getElementById("confusion-list");
    for (const [bench, info] of Object.entries(DATA.benches)) {
      if (!info.confusion.some((c) => c)) continue;
      const row = el("div", { class: "matrices" });
      info.confusion.forEach((c, i) => {
        if (!c) return;
        row.append(el("div", { class: "matrix" }, el("h3", { text: DATA.runs[i] + " · " + fmt(info.scores[i], 2) + "%" }), matrixTable(c)));
      });
      list.append(el("h3", { text: BENCH_NAMES[bench] || bench }), row);
    }
    if (!list.children.length) list.append(el("p", { class: "muted", text: "no classification results with a confusion matrix" }));
  }

  function renderDisagreements() {
    const list = document.getElementById("disagree-list");
    for (const [bench, info] of Object.entries(DATA.benches)) {
      if (!info.disagreements_total) continue;
      list.append(el("h3", { text: (BENCH_NAMES[bench] || bench) + ": " + info.disagreements_total + " question" + (info.disagreements_total === 1 ? "" : "s") + " answered differently" +
        (info.disagreements_total > info.disagreements.length ? " (first " + info.disagreements.length + " shown)" : "") }));
      const grid = el("div", { class: "items" });
      for (const item of info.disagreements) {
        const image = item.thumb ? el("img", { class: "thumb", src: item.thumb, alt: "image of question " + item.question_id }) : el("div", { class: "noimg", text: "no image" });
        const answers = item.answers.map((answer, i) => el("div", {
          class: "answer " + (item.correct[i] === true ? "right" : item.correct[i] === false ? "wrong" : "") },
          el("span", { class: "run", text: DATA.runs[i] }), el("span", { class: "text", text: answer === null ? "—" : answer })));
        grid.append(el("div", { class: "item" }, image, el("div", { class: "q", text: "Q" + item.question_id + ": " + item.question }),
          el("div", { class: "truth", text: "ground truth: " + (item.ground_truth === null ? "—" : item.ground_truth) }), ...answers));
      }
      list.append(grid);
    }
    if (!list.children.length) list.append(el("p", { class: "muted", text: "no question answered differently (or no predictions files)" }));
  }

  document.getElementById("subtitle").textContent = DATA.runs.length + " runs: " + DATA.runs.join(", ");
  renderTable();
  renderBars();
  renderConfusion();
  renderDisagreements();
  window.compareReadyMs = performance.now();
  document.body.dataset.ready = "1";
})();
