"""The API docs page, self-contained: it reads /openapi.json and lists every endpoint, with no CDN.

FastAPI's own /docs and /redoc pages load Swagger UI and ReDoc from a CDN, which a server on an
offline machine (or behind a strict firewall) cannot reach; they are turned off and this page serves
the same schema. Any OpenAPI viewer can also be pointed at /openapi.json.
"""

from __future__ import annotations

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zoo-serve API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem} .op{border:1px solid #ddd;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:4.2rem;font-weight:600;font-family:monospace}
.GET{color:#0a6} .POST{color:#06c} code,pre{font-family:monospace;background:#f5f5f5;padding:0 .2rem}
pre{padding:.5rem;overflow:auto;font-size:13px} small{color:#666}
</style></head><body>
<h1>zoo-serve API</h1>
<p>Every endpoint of this server, from <a href="openapi.json">openapi.json</a> (OpenAPI 3). Errors are
<code>{"error": "one sentence"}</code> with a 4xx or 5xx code. <a href="models">GET /models</a> lists the served models.</p>
<div id="ops">Loading openapi.json…</div>
<script>
function esc(s){return String(s).replace(/[&<>"]/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));}
fetch("openapi.json").then(r=>r.json()).then(api=>{
  const out=[];
  for(const [path,item] of Object.entries(api.paths)){
    for(const [method,op] of Object.entries(item)){
      const params=(op.parameters||[]).map(p=>
        `<code>${esc(p.name)}</code> <small>(${esc(p.in)}${p.required?", required":""})</small>`).join(", ");
      const body=op.requestBody?`<pre>${esc(JSON.stringify(op.requestBody.content,null,1)).slice(0,1200)}</pre>`:"";
      out.push(`<div class="op"><span class="m ${method.toUpperCase()}">${method.toUpperCase()}</span> <code>${esc(path)}</code>
        <div>${esc(op.summary||"")}</div><small>${esc(op.description||"")}</small>
        ${params?`<div>Parameters: ${params}</div>`:""}${body}</div>`);
    }
  }
  document.getElementById("ops").innerHTML=out.join("");
}).catch(e=>{document.getElementById("ops").textContent="Cannot read openapi.json: "+e;});
</script></body></html>
"""
