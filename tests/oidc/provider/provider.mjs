// A real OpenID provider on loopback for Strongbox's single sign-on tests (tests/oidc/).
//
// node_modules' oidc-provider, configured with one confidential client, RS256 ID tokens
// signed by a key made at start (published at the JWKS endpoint), PKCE required, and
// oidc-provider's development login and consent pages (any password; the login names the
// account). The accounts and their groups are read from OIDC_ACCOUNTS_FILE on every
// request, so a test changes someone's groups by rewriting the file.
//
// Environment: OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS (commas),
// OIDC_ACCOUNTS_FILE ({"ada": {"email": ..., "groups": [...]}, ...}).
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const port = Number(env('OIDC_PORT'));
const issuer = `http://127.0.0.1:${port}`;
const accounts = () => JSON.parse(readFileSync(env('OIDC_ACCOUNTS_FILE'), 'utf8'));

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: env('OIDC_CLIENT_ID'),
    client_secret: env('OIDC_CLIENT_SECRET'),
    redirect_uris: env('OIDC_REDIRECT_URIS').split(','),
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['strongbox-test-cookie-key'] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'given_name', 'family_name'],
    groups: ['groups'],
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const account = accounts()[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, email_verified: true, ...account };
      },
    };
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
