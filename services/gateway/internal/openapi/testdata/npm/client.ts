// A client written against the types openapi-typescript generates from /openapi.v3.json
// (api.d.ts beside this file when the gateway's tools test runs), with openapi-fetch, as a
// user would write it. The test type-checks it (tsc --noEmit): it breaks if a path, a
// field's name or whether it is always present changes.
import createClient from "openapi-fetch";
import type { components, paths } from "./api";

type Stock = components["schemas"]["v1Stock"];
type Status = components["schemas"]["rpcStatus"];

const client = createClient<paths>({ baseUrl: "http://localhost:8080" });

export async function example(token: string): Promise<string[]> {
  const headers = { Authorization: `Bearer ${token}` };

  // A custom verb: ":deposit" is part of the path, {portfolio_id} its one parameter.
  const deposit = await client.POST("/v1/portfolios/{portfolio_id}:deposit", {
    params: { path: { portfolio_id: "1" } },
    body: { amount: "100", request_id: "deposit-1" },
    headers,
  });
  if (deposit.error) {
    // Errors are google.rpc.Status; code, message and details are always present.
    const status: Status = deposit.error;
    return [String(status.code), status.message, ...status.details.map((d) => d["@type"])];
  }
  // Scalars are always present (no "?"); a message field may be absent while unset.
  const cash: string | undefined = deposit.data.portfolio?.cash;

  // Read your writes: a write answers with its consistency token (a documented response
  // header: an undocumented one would type as unknown, which a string does not take) ...
  type WriteToken = paths["/v1/portfolios/{portfolio_id}:deposit"]["post"]["responses"][200]["headers"]["Pgfleet-Consistency-Token"];
  const consistency: string | undefined = (deposit.response.headers.get("Pgfleet-Consistency-Token") ?? undefined) as WriteToken;
  // ... and a read sends it back as a header parameter, to see the deposit.
  const trades = await client.GET("/v1/portfolios/{portfolio_id}/trades", {
    params: { path: { portfolio_id: "1" }, header: consistency ? { "Pgfleet-Consistency-Token": consistency } : {} },
    headers,
  });
  if (trades.error) {
    return [trades.error.message];
  }

  const got = await client.GET("/v1/stocks/{symbol}", { params: { path: { symbol: "AAPL" } } });
  const stock: Stock | undefined = got.data?.stock;
  const fields: string[] = stock ? [stock.symbol, stock.name, stock.sector, stock.market_cap] : [];

  // A request body sends only what the request form requires: no output-only field, no
  // field that answers always hold.
  await client.POST("/v1/stocks:upsert", { body: { stocks: [{ symbol: "ACME", name: "Acme Corp." }] }, headers });

  const next = await client.GET("/v1/sessions/{session_id}:next", { params: { path: { session_id: "1" } }, headers });
  const remaining: number | undefined = next.data?.remaining;

  return [cash ?? "0", ...fields, String(remaining)];
}
