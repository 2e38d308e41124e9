// Hélio page: plain JS, no build, no external requests. Untrusted text (answers, passages,
// paths, reasons) is always inserted with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SAFE_PATH = /^[\w\-. /:@+(),~!]+$/u;  // a path that can be sent as a literal glob

function apiKey() { return $("chave").value.trim(); }

async function api(route, payload) {
  const headers = { "Content-Type": "application/json" };
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(route, { method: "POST", headers, body: JSON.stringify(payload || {}) });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const reason = (data && data.error) || response.statusText || "erro";
    const messages = {
      401: "Chave de acesso ausente ou incorreta (abra “Chave de acesso”).",
      403: "Pedido recusado pelo serviço: " + reason,
      413: "Pergunta grande demais.",
      429: "Serviço ocupado; tente de novo em instantes.",
      503: "Serviço ocupado; tente de novo em instantes.",
    };
    if (response.status === 401) $("chave-box").open = true;
    const error = new Error(messages[response.status] || ("Erro " + response.status + ": " + reason));
    error.status = response.status;
    throw error;
  }
  return data;
}

function setStatus(text, isError) {
  const el = $("estado");
  el.textContent = text || "";
  el.classList.toggle("erro", Boolean(isError));
}

function where(c) {
  const parts = [];
  if (c.page) parts.push("p. " + c.page);
  if (c.section) parts.push(c.section);
  return parts.join(" — ");
}

let citations = [];

function renderAnswer(result) {
  citations = Array.isArray(result.citations) ? result.citations : [];
  const box = $("resposta-texto");
  box.replaceChildren();
  const text = String(result.answer || "");
  // "[n]" markers become buttons that open citation n
  const pieces = text.split(/(\[\d+\])/);
  for (const piece of pieces) {
    const m = /^\[(\d+)\]$/.exec(piece);
    if (m && citations[Number(m[1]) - 1]) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "cit"; b.textContent = piece;
      b.dataset.n = m[1];
      b.title = "Abrir a fonte " + m[1];
      b.addEventListener("click", () => openCitation(Number(m[1])));
      box.appendChild(b);
    } else if (piece) {
      box.appendChild(document.createTextNode(piece));
    }
  }
  const list = $("citacoes");
  list.replaceChildren();
  citations.forEach((c, i) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button"; b.className = "fonte"; b.dataset.n = String(i + 1);
    b.textContent = c.title || c.path || ("fonte " + (i + 1));
    b.addEventListener("click", () => openCitation(i + 1));
    li.appendChild(b);
    const info = document.createElement("span");
    info.className = "onde";
    const w = where(c);
    info.textContent = " " + (c.path || "") + (w ? " — " + w : "");
    li.appendChild(info);
    list.appendChild(li);
  });
  $("resposta").hidden = false;
  $("trecho").hidden = true;
}

function showPassage(text, snippet) {
  const quote = $("trecho-texto");
  quote.replaceChildren();
  const at = snippet ? text.indexOf(snippet) : -1;
  if (at < 0) { quote.textContent = text; return; }
  quote.appendChild(document.createTextNode(text.slice(0, at)));
  const mark = document.createElement("mark");
  mark.textContent = snippet;
  quote.appendChild(mark);
  quote.appendChild(document.createTextNode(text.slice(at + snippet.length)));
}

async function openCitation(n) {
  const c = citations[n - 1];
  if (!c) return;
  $("trecho-titulo").textContent = "[" + n + "] " + (c.title || c.path || "");
  const w = where(c);
  $("trecho-onde").textContent = (c.path || "") + (w ? " — " + w : "");
  showPassage(String(c.snippet || ""), "");
  const panel = $("trecho");
  panel.hidden = false;
  panel.dataset.n = String(n);
  panel.scrollIntoView({ block: "nearest" });
  // the whole chunk around the quoted snippet, when its path can be used as a glob
  if (!c.snippet || !c.path || !SAFE_PATH.test(c.path) || c.chunk_index === undefined) return;
  try {
    const hits = await api("/v1/retrieve", { query: String(c.snippet).slice(0, 2000), k: 50,
                                             filepath_globpattern: c.path });
    const hit = (hits || []).find((h) => h.metadata && h.metadata.chunk_index === c.chunk_index);
    if (hit && panel.dataset.n === String(n)) showPassage(String(hit.text || ""), String(c.snippet));
  } catch (e) { /* the snippet alone stays shown */ }
}

async function ask(event) {
  event.preventDefault();
  const question = $("pergunta").value.trim();
  if (!question) return;
  const button = $("perguntar");
  button.disabled = true;
  setStatus("Procurando nos documentos…");
  try {
    const result = await api("/v2/answer", { prompt: question });
    renderAnswer(result);
    setStatus(result.mode === "error" ? "Não foi possível responder agora." : "", result.mode === "error");
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    button.disabled = false;
  }
}

function fmtTime(unix) {
  if (!unix) return "—";
  const date = new Date(unix * 1000);
  const ago = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  const rel = ago < 60 ? ago + " s" : ago < 3600 ? Math.round(ago / 60) + " min" : Math.round(ago / 3600) + " h";
  return date.toLocaleString("pt-BR") + " (há " + rel + ")";
}

async function refresh() {
  try {
    const stats = await api("/v1/statistics");
    $("st-arquivos").textContent = String(stats.files ?? "—");
    $("st-trechos").textContent = String(stats.chunks ?? "—");
    $("st-indexado").textContent = fmtTime(stats.last_indexed);
    $("st-alterado").textContent = fmtTime(stats.last_modified);
    const inputs = await api("/v1/inputs");
    const bad = (inputs || []).filter((e) => e.status !== "indexed");
    const list = $("falhas");
    list.replaceChildren();
    $("falhas-total").textContent = "(" + bad.length + " de " + (inputs || []).length + ")";
    if (!bad.length) {
      const li = document.createElement("li"); li.className = "nota";
      li.textContent = "Nenhuma: todos os documentos foram indexados.";
      list.appendChild(li);
    }
    for (const e of bad) {
      const li = document.createElement("li");
      li.className = "falha";
      li.textContent = e.path || "?";
      const reason = document.createElement("span");
      reason.className = "motivo";
      reason.textContent = (e.status === "empty" ? "vazio" : "erro") + ": " + (e.reason || "sem motivo informado");
      li.appendChild(reason);
      list.appendChild(li);
    }
  } catch (e) {
    $("falhas").replaceChildren(Object.assign(document.createElement("li"), { className: "nota", textContent: e.message }));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const key = $("chave");
  key.value = sessionStorage.getItem("helio-chave") || "";
  key.addEventListener("change", () => { sessionStorage.setItem("helio-chave", key.value.trim()); refresh(); });
  const q = $("pergunta");
  q.addEventListener("input", () => { $("contador").textContent = q.value.length + " / 2000"; });
  q.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("pergunta-form").requestSubmit(); });
  $("pergunta-form").addEventListener("submit", ask);
  $("trecho-fechar").addEventListener("click", () => { $("trecho").hidden = true; });
  $("atualizar").addEventListener("click", refresh);
  refresh();
  setInterval(refresh, 15000);
});
