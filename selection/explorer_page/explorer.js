"use strict";
// Selection explorer. Every text from the data goes into the page through textContent / text nodes,
// never innerHTML, so a record whose answer is "<script>" shows as text.
(function () {
  const DATA = JSON.parse(document.getElementById("explorer-data").textContent);
  const OV = DATA.overview;
  const state = { sort: "size", desc: true, task: "", cls: "", show: "both", query: "", cluster: null, limit: 300 };

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key === "title" || key === "href") node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  const fmt = (x, digits = 3) => (x === null || x === undefined ? "—" : Number(x).toFixed(digits));
  const pct = (a, b) => (b ? (100 * a / b).toFixed(1) + "%" : "—");
  const clusterName = (id) => (id < 0 ? "all records" : "cluster " + id);

  // Samples by cluster, with a lower-cased text for the search.
  const byCluster = new Map();
  for (const s of DATA.samples) {
    s.haystack = [s.question, s.answer, s.id, s.origin || "", s.source].join("\n").toLowerCase();
    if (!byCluster.has(s.cluster)) byCluster.set(s.cluster, []);
    byCluster.get(s.cluster).push(s);
  }

  function sampleMatches(s) {
    if (state.task !== "" && String(s.task) !== state.task) return false;
    if (state.cls !== "" && String(s.class) !== state.cls) return false;
    if (state.show === "kept" && !s.kept) return false;
    if (state.show === "dropped" && s.kept) return false;
    return !state.query || s.haystack.includes(state.query);
  }

  // [total, kept] of a cluster under the task / class filters (class counts when both are set).
  function counts(c) {
    if (state.cls !== "") return c.classes[state.cls] || null;
    if (state.task !== "") return c.tasks[state.task] || null;
    return [c.size, c.kept];
  }

  function visibleClusters() {
    const rows = [];
    for (const c of DATA.clusters) {
      if (state.task !== "" && !c.tasks[state.task]) continue;
      const n = counts(c);
      if (!n) continue;
      let matches = null;
      if (state.query) {
        matches = (byCluster.get(c.id) || []).filter(sampleMatches).length;
        if (!matches) continue;
      }
      rows.push({ c, total: n[0], kept: n[1], matches });
    }
    const key = {
      size: (r) => r.total,
      share: (r) => (r.total ? r.kept / r.total : 0),
      score: (r) => (r.c.mean_score === null ? -Infinity : r.c.mean_score),
      id: (r) => r.c.id,
    }[state.sort];
    const sign = state.desc ? -1 : 1;
    rows.sort((a, b) => sign * (key(a) - key(b)) || a.c.id - b.c.id);
    return rows;
  }

  function renderOverview() {
    document.getElementById("title").textContent = "Selection: " + OV.method;
    document.getElementById("subtitle").textContent =
      "kept " + OV.n_kept + " of " + OV.n_total + " records · config " + (OV.config_hash || "—");
    const box = document.getElementById("overview");
    const card = (label, big) => el("div", { class: "card" }, el("div", { class: "big", text: String(big) }), el("div", { class: "label", text: label }));
    box.append(
      card("pool", OV.n_total), card("kept", OV.n_kept), card("kept share", pct(OV.n_kept, OV.n_total)),
      card("budget", OV.budget), card("method", OV.method), card("seed", OV.seed),
      card(OV.clustered ? "clusters" : "groups (not clustered)", OV.n_clusters),
    );
    const facts = el("div", { class: "card facts" },
      el("div", { text: "options: " + (JSON.stringify(OV.options) || "{}") }),
      el("div", { text: "info: " + (JSON.stringify(OV.info) || "{}") }),
      el("div", { text: "thumbnails: " + OV.thumbnails.written + " written, " + OV.thumbnails.unreadable +
        " unreadable, " + OV.thumbnails.without_image + " samples without an image" }),
      el("div", { text: "samples: up to " + DATA.limits.per_side + " kept + " + DATA.limits.per_side +
        " dropped per cluster, for " + DATA.limits.sampled_clusters + " of " + DATA.clusters.length + " clusters" }));
    const timings = el("table", { class: "timings" });
    for (const [stage, seconds] of Object.entries(OV.timings)) {
      timings.append(el("tr", {}, el("td", { text: stage }), el("td", { text: fmt(seconds, 2) + " s" })));
    }
    box.append(facts, el("div", { class: "card" }, el("div", { class: "label", text: "timings" }), timings));
    const plots = el("div", { class: "plots" });
    for (const [title, png] of Object.entries(OV.plots)) {
      plots.append(el("figure", {}, el("a", { href: png }, el("img", { src: png, alt: title })), el("figcaption", { text: title })));
    }
    if (Object.keys(OV.plots).length) box.append(plots);
  }

  function fillSelect(id, names) {
    const select = document.getElementById(id);
    names.forEach((name, code) => select.append(el("option", { value: String(code), text: name })));
    if (!names.length) select.disabled = true;
  }

  function renderClusters(rows) {
    const body = document.querySelector("#clusters tbody");
    body.replaceChildren();
    for (const r of rows.slice(0, state.limit)) {
      const share = r.total ? r.kept / r.total : 0;
      const tr = el("tr", { class: "cluster-row" + (r.c.id === state.cluster ? " selected" : ""), "data-cluster": String(r.c.id) },
        el("td", { text: clusterName(r.c.id) }), el("td", { text: String(r.total) }), el("td", { text: String(r.kept) }),
        el("td", {}, el("span", { class: "bar" }, el("span", { style: "width:" + (100 * share).toFixed(1) + "%" })), pct(r.kept, r.total)),
        el("td", { text: fmt(r.c.mean_score) }), el("td", { text: r.matches === null ? "" : String(r.matches) }));
      tr.addEventListener("click", () => selectCluster(r.c.id));
      body.append(tr);
    }
    document.getElementById("more").hidden = rows.length <= state.limit;
    document.getElementById("matches-head").hidden = !state.query;
    const shownSamples = DATA.samples.filter(sampleMatches).length;
    document.getElementById("status").textContent = rows.length + " of " + DATA.clusters.length + " clusters · " +
      shownSamples + " of " + DATA.samples.length + " samples match";
  }

  function sampleCard(s) {
    const image = s.thumb ? el("img", { class: "thumb", src: s.thumb, alt: "image of " + s.id }) : el("div", { class: "noimg", text: "no image" });
    const meta = el("div", { class: "meta" }, el("span", { class: "chip", text: "score " + fmt(s.score) }),
      el("span", { class: "chip", text: DATA.tasks[s.task] || "?" }),
      s.class >= 0 ? el("span", { class: "chip", text: DATA.classes[s.class] }) : null);
    const origin = s.origin ? el("div", { class: "origin", title: "click to copy", text: s.origin }) : null;
    if (origin) origin.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(s.origin).catch(() => {}));
    const ref = el("div", { class: "ref" },
      el("a", { href: "#id=" + encodeURIComponent(s.id), title: "link to this record", text: "id " + s.id }),
      el("div", { text: "source " + s.source }), origin);
    return el("div", { class: "sample " + (s.kept ? "kept" : "dropped"), "data-id": s.id }, image, meta,
      el("div", { class: "q", text: "Q: " + s.question }), el("div", { class: "a", text: "A: " + s.answer }), ref);
  }

  function renderDetail() {
    const box = document.getElementById("detail");
    box.replaceChildren();
    const c = DATA.clusters.find((x) => x.id === state.cluster);
    if (!c) { box.append(el("p", { class: "hint", text: "Click a cluster to see its samples." })); return; }
    box.append(el("h2", { text: clusterName(c.id) + ": kept " + c.kept + " of " + c.size + " (" + pct(c.kept, c.size) +
      "), mean score " + fmt(c.mean_score) }));
    const chips = el("div", { class: "chips" });
    for (const [code, n] of Object.entries(c.tasks)) chips.append(el("span", { class: "chip", text: DATA.tasks[code] + " " + n[1] + "/" + n[0] + " kept" }));
    const classes = Object.entries(c.classes).sort((a, b) => b[1][0] - a[1][0]);
    for (const [code, n] of classes.slice(0, 12)) chips.append(el("span", { class: "chip", text: DATA.classes[code] + " " + n[1] + "/" + n[0] }));
    if (classes.length > 12) chips.append(el("span", { class: "chip", text: "+" + (classes.length - 12) + " classes" }));
    box.append(chips);
    if (!c.sampled) box.append(el("p", { class: "hint", text: "No samples embedded for this cluster: the report shows samples of the " +
      DATA.limits.sampled_clusters + " largest clusters (raise selection.report_max_samples)." }));
    const samples = (byCluster.get(c.id) || []).filter(sampleMatches);
    const sides = el("div", { class: "sides" });
    for (const [kept, label] of [[true, "kept"], [false, "dropped"]]) {
      if ((state.show === "kept" && !kept) || (state.show === "dropped" && kept)) continue;
      const part = samples.filter((s) => s.kept === kept);
      const total = kept ? c.kept : c.size - c.kept;
      const grid = part.length ? el("div", { class: "grid" }, ...part.map(sampleCard)) : el("p", { class: "hint", text: "none here" });
      sides.append(el("div", { class: "side " + label }, el("h3", { class: label, text: label + ": showing " + part.length + " of " + total }), grid));
    }
    box.append(sides);
  }

  function selectCluster(id, fromHash) {
    state.cluster = id;
    for (const tr of document.querySelectorAll("#clusters tr.cluster-row")) tr.classList.toggle("selected", tr.dataset.cluster === String(id));
    renderDetail();
    if (!fromHash) history.replaceState(null, "", "#cluster=" + id);
  }

  function openFromHash() {
    const hash = decodeURIComponent(location.hash.slice(1));
    if (hash.startsWith("cluster=")) { selectCluster(Number(hash.slice(8)), true); return true; }
    if (hash.startsWith("id=")) {
      const id = hash.slice(3);
      const s = DATA.samples.find((x) => x.id === id);
      if (!s) return false;
      selectCluster(s.cluster, true);
      for (const card of document.querySelectorAll("#detail .sample")) {
        if (card.dataset.id === id) { card.classList.add("highlight"); card.scrollIntoView({ block: "center" }); }
      }
      return true;
    }
    return false;
  }

  // Re-render after a change of sort / filter / search; a selected cluster the filters hide gives way to
  // the first one left.
  function refresh() {
    const rows = visibleClusters();
    if (rows.length && !rows.some((r) => r.c.id === state.cluster)) state.cluster = rows[0].c.id;
    renderClusters(rows);
    renderDetail();
  }

  renderOverview();
  fillSelect("task", DATA.tasks);
  fillSelect("class", DATA.classes);
  const on = (id, event, fn) => document.getElementById(id).addEventListener(event, fn);
  on("sort", "change", (e) => { state.sort = e.target.value; refresh(); });
  on("order", "click", (e) => { state.desc = !state.desc; e.target.textContent = state.desc ? "↓ descending" : "↑ ascending"; refresh(); });
  on("task", "change", (e) => { state.task = e.target.value; refresh(); });
  on("class", "change", (e) => { state.cls = e.target.value; refresh(); });
  on("show", "change", (e) => { state.show = e.target.value; refresh(); });
  on("search", "input", (e) => { state.query = e.target.value.trim().toLowerCase(); refresh(); });
  on("more", "click", () => { state.limit += 300; renderClusters(visibleClusters()); });
  window.addEventListener("hashchange", openFromHash);
  refresh();
  openFromHash();
  window.explorerReadyMs = performance.now();
  document.body.dataset.ready = "1";
})();
