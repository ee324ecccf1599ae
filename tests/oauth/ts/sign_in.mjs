// The MCP TypeScript SDK's OAuth client, headless: discovery from the server's 401, dynamic
// registration, authorization code + PKCE through the issuer's auto-login, then `whoami`.
// Usage: node sign_in.mjs <mcp-server-url> <tenant>/<user>; prints one JSON line.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [serverUrl, loginHint] = process.argv.slice(2);
const redirectUrl = "http://127.0.0.1:33419/callback";
let clientInformation;
let tokens;
let codeVerifier;
let authorizationCode;
let issuer;

const authProvider = {
  get redirectUrl() {
    return redirectUrl;
  },
  get clientMetadata() {
    return {
      client_name: "mcp-idfwd TypeScript SDK test",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  },
  clientInformation: () => clientInformation,
  saveClientInformation: (info) => {
    clientInformation = info;
  },
  tokens: () => tokens,
  saveTokens: (saved) => {
    tokens = saved;
  },
  saveCodeVerifier: (verifier) => {
    codeVerifier = verifier;
  },
  codeVerifier: () => codeVerifier,
  // The "browser": ask for the page with a login hint; an auto-login issuer redirects straight back.
  async redirectToAuthorization(authorizationUrl) {
    authorizationUrl.searchParams.set("login_hint", loginHint);
    const response = await fetch(authorizationUrl, { redirect: "manual" });
    const location = response.headers.get("location");
    if (response.status !== 302 || !location) {
      throw new Error(`authorization endpoint answered ${response.status} instead of redirecting back`);
    }
    const back = new URL(location);
    if (back.searchParams.get("error")) {
      throw new Error(`sign-in refused: ${back.searchParams.get("error")}`);
    }
    authorizationCode = back.searchParams.get("code");
    issuer = back.searchParams.get("iss");
  },
};

async function connect() {
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider });
  const client = new Client({ name: "mcp-idfwd-ts-test", version: "0.0.0" });
  await client.connect(transport);
  return { client, transport };
}

let session;
try {
  session = await connect();
} catch (error) {
  if (!(error instanceof UnauthorizedError) || !authorizationCode) throw error;
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider });
  await transport.finishAuth(authorizationCode);
  session = await connect();
}
const result = await session.client.callTool({ name: "whoami", arguments: {} });
await session.client.close();
console.log(
  JSON.stringify({
    whoami: result.structuredContent,
    client_id: clientInformation?.client_id,
    iss: issuer,
    has_refresh_token: Boolean(tokens?.refresh_token),
  }),
);
