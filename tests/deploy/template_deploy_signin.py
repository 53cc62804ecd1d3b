"""The sign-in checks of tests/deploy/test_template_deploy.py, in three parameter sets
(defaults: the Cognito user pool; an external issuer; no identity provider, as on
LocalStack): the JWT authorizer on every write route and on GET /api/nodes, `NONE` on public
reads and WHIP, no route that would catch CORS preflight, the same issuer/audience/JWKS in
the authorizer and in every function's environment, the user pool, app client, hosted-UI
domain and operators' group, and the outputs (the web app's WebConfig among them). moto's
CloudFormation has neither Cognito nor API Gateway v2 nor custom resources (they become
stand-ins, see template_deploy_harness.py), so most of these are checked on the expanded
template (`t_`: `check(template, params)`); on moto (`m_`: `check(ctx)`) the functions'
identity settings and the outputs are read back, and the custom resource's inline Python
runs against moto's Cognito API.

test_template_deploy.py runs TEMPLATE_CHECKS and MOTO_CHECKS below after its own.
"""

import json
import sys

import template_deploy_harness as harness  # first: dummy credentials, scripts/ on sys.path
import boto3
import sam_transform
from template_deploy_harness import REGION, checks, function, granted_by, target

# GET routes that need the caller (operators; a channel's owner and moderators), so behind
# the authorizer like the writes. Every other GET is public (a function that reads an
# optional caller verifies the token itself).
CALLER_GETS = {("/api/nodes", "get"), ("/api/channels/{channelId}/members", "get"),
               ("/api/streams/{id}/events", "get"), ("/api/channels/{channelId}/webhooks", "get"),
               ("/api/me/notifications", "get"), ("/api/streams/{id}/analytics", "get"),
               ("/api/channels/{channelId}/analytics", "get")}
WRITE_METHODS = {"post", "put", "patch", "delete"}
COGNITO_ISSUER = {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"}
POOL_RESOURCES = {"UserPool", "UserPoolClient", "UserPoolDomain", "OperatorUserGroup",
                  "UserPoolClientOAuth", "UserPoolClientOAuthFunction", "UserPoolClientOAuthRole"}


def identity(t, p):
    """(issuer, audience, jwks) the stack should trust for this parameter set."""
    if p.get("JwtIssuer"):
        jwks = p.get("JwksUrl") or {"Fn::Sub": "${JwtIssuer}/.well-known/jwks.json"}
        return p["JwtIssuer"], p["JwtAudience"], jwks
    if t.params["CreateUserPool"] == "true":
        return (COGNITO_ISSUER, {"Ref": "UserPoolClient"},
                {"Fn::Sub": COGNITO_ISSUER["Fn::Sub"] + "/.well-known/jwks.json"})
    return None


def http_routes(t):
    body = t.resources["HttpApi"]["Properties"]["Body"]
    return {(path, method): op for path, ops in body["paths"].items()
            for method, op in ops.items()}


def t_write_routes_need_the_jwt_authorizer_reads_and_whip_do_not(t, p):
    routes = http_routes(t)
    assert len(routes) >= 30, len(routes)
    for (path, method), op in sorted(routes.items()):
        public = path.startswith("/whip/") or (method == "get" and (path, method) not in CALLER_GETS)
        assert method in WRITE_METHODS | {"get"}, (path, method)
        want = [{"NONE": []}] if public else [{"Jwt": []}]
        assert op.get("security") == want, (method.upper(), path, op.get("security"), want)
    # SAM accepts `Authorizer: NONE` only next to a DefaultAuthorizer: a new route is
    # protected unless its event says otherwise.
    raw = sam_transform.decode(harness.TEMPLATE)[0]["Resources"]["HttpApi"]["Properties"]["Auth"]
    assert raw["DefaultAuthorizer"] == "Jwt", raw


def t_cors_preflight_is_answered_before_any_authorizer(t, p):
    # API Gateway answers OPTIONS itself when CORS is configured and no route matches
    # OPTIONS: no ANY, no OPTIONS, no $default route.
    routes = http_routes(t)
    assert not [r for r in routes if r[1] in ("options", "x-amazon-apigateway-any-method")], routes
    assert not [r for r in routes if r[0] in ("$default", "/{proxy+}")], routes
    cors = t.resources["HttpApi"]["Properties"]["Body"]["x-amazon-apigateway-cors"]
    assert "authorization" in {h.lower() for h in cors["allowHeaders"]}, cors


def t_authorizer_trusts_the_same_issuer_and_audience_as_the_functions(t, p):
    body = t.resources["HttpApi"]["Properties"]["Body"]
    auth = body["components"]["securitySchemes"]["Jwt"]["x-amazon-apigateway-authorizer"]
    assert (auth["type"], auth["identitySource"]) == ("jwt", "$request.header.Authorization"), auth
    cfg = auth["jwtConfiguration"]
    want = identity(t, p)
    if want:
        assert (cfg["issuer"], cfg["audience"]) == (want[0], [want[1]]), cfg
    else:
        # No provider: a placeholder nobody signs for (the functions use JWT_SECRET).
        assert cfg["issuer"].endswith(".invalid"), cfg


def t_every_function_gets_the_identity_settings(t, p):
    want = identity(t, p)
    expected = {
        "JWT_ISSUER": want[0] if want else "",
        "JWT_AUDIENCE": want[1] if want else "",
        "JWKS_URL": want[2] if want else "",
        "JWT_SECRET": p.get("JwtSecret", ""),
    }
    fns = t.rill_functions()
    assert len(fns) >= 37, len(fns)
    for name, fn in fns.items():
        env = fn["Properties"]["Environment"]["Variables"]
        got = {k: env.get(k) for k in expected}
        assert got == expected, (name, got, expected)
    ops = function(t, "nodes-list")["Environment"]["Variables"]
    assert ops["OPERATOR_GROUP"] == t.params["OperatorGroup"], ops


def t_jwt_secret_can_be_left_empty_by_a_guided_deploy(t, p):
    # `sam deploy --guided` asks a NoEcho parameter again without a default and cannot
    # leave it empty; every parameter must be answerable with Enter.
    for name, param in t.raw["Parameters"].items():
        assert not param.get("NoEcho"), f"{name} is NoEcho"
        assert "Default" in param, f"{name} has no default"
    assert t.raw["Parameters"]["JwtSecret"]["Default"] == ""


def t_user_pool_only_without_an_external_issuer(t, p):
    present = POOL_RESOURCES & set(t.resources)
    if p.get("JwtIssuer") or t.params["CreateUserPool"] != "true":
        assert not present, sorted(present)
        return
    assert present == POOL_RESOURCES, sorted(POOL_RESOURCES - present)
    pool = t.resources["UserPool"]["Properties"]
    assert pool["UsernameAttributes"] == ["email"] and pool["AutoVerifiedAttributes"] == ["email"]
    # Chat shows the `name` claim: the sign-up form must ask for it.
    assert {"Name": "name", "AttributeDataType": "String", "Mutable": True, "Required": True} \
        in pool["Schema"], pool["Schema"]
    client = t.resources["UserPoolClient"]["Properties"]
    assert client["GenerateSecret"] is False, "a browser keeps no client secret"
    assert target(client["UserPoolId"]) == "UserPool"
    domain = t.resources["UserPoolDomain"]["Properties"]["Domain"]
    if p.get("AuthDomainPrefix"):
        assert domain == p["AuthDomainPrefix"]
    else:
        assert domain == {"Fn::Join": ["-", ["rill", {"Fn::Select": [
            2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]]}, domain
    group = t.resources["OperatorUserGroup"]["Properties"]
    assert group["GroupName"] == t.params["OperatorGroup"] and target(group["UserPoolId"]) == "UserPool"
    oauth = t.resources["UserPoolClientOAuth"]["Properties"]
    assert target(oauth["ClientId"]) == "UserPoolClient"
    assert oauth["Scopes"] == ["openid", "profile", "email"]
    web = [{"Fn::Sub": "https://${WebDistribution.DomainName}"},
           {"Fn::Sub": "https://${WebDistribution.DomainName}/"}]
    assert oauth["CallbackUrls"] == web and oauth["LogoutUrls"] == web, oauth
    fn = t.resources["UserPoolClientOAuthFunction"]["Properties"]
    assert target(fn["Role"]) == "UserPoolClientOAuthRole"
    role = t.resources["UserPoolClientOAuthRole"]
    granted = granted_by({"Type": "AWS::IAM::Role", "Properties": {
        "Policies": role["Properties"]["Policies"]}})
    pool_arn = json.dumps({"Fn::GetAtt": ["UserPool", "Arn"]})
    assert granted == {"cognito-idp:DescribeUserPoolClient": [(pool_arn, None)],
                       "cognito-idp:UpdateUserPoolClient": [(pool_arn, None)]}, granted


def t_outputs_for_the_web_app(t, p):
    outputs = {n for n, o in t.raw["Outputs"].items()
               if "Condition" not in o or t.condition(o["Condition"])}
    pool = {"UserPoolId", "UserPoolClientId", "AuthDomainUrl", "WebConfig"}
    if identity(t, p) is None:
        assert not (pool | {"Issuer"}) & outputs, outputs
    elif p.get("JwtIssuer"):
        assert "Issuer" in outputs and not pool & outputs, outputs
        assert t.resolve(t.raw["Outputs"]["Issuer"]["Value"]) == p["JwtIssuer"]
    else:
        assert pool | {"Issuer"} <= outputs, outputs
        assert t.raw["Outputs"]["AuthDomainUrl"]["Value"] == {
            "Fn::Sub": "https://${UserPoolDomain}.auth.${AWS::Region}.amazoncognito.com"}


def t_an_external_issuer_needs_an_audience(t, p):
    (rule,) = t.raw["Rules"].values()
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtIssuer"}, ""]}]}
    (a,) = rule["Assertions"]
    assert a["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtAudience"}, ""]}]}


def m_functions_get_the_identity_settings(ctx):
    lam = boto3.client("lambda")
    p = ctx["params"]
    for name in ("streams-create", "ws-connect", "nodes-list"):
        env = lam.get_function_configuration(FunctionName=f"{ctx['stack']}-{name}")["Environment"]["Variables"]
        got = (env["JWT_ISSUER"], env["JWKS_URL"], env["JWT_AUDIENCE"], env["JWT_SECRET"])
        if p.get("JwtIssuer"):
            want = (p["JwtIssuer"], f"{p['JwtIssuer']}/.well-known/jwks.json", p["JwtAudience"], "")
        elif p.get("CreateUserPool", "true") == "true":
            # moto has no Cognito in CloudFormation: the pool's id is a stand-in (harness doc).
            iss = f"https://cognito-idp.{REGION}.amazonaws.com/moto-stub-UserPool"
            want = (iss, f"{iss}/.well-known/jwks.json", "moto-stub-UserPoolClient", "")
        else:
            want = ("", "", "", p["JwtSecret"])
        assert got == want, (name, got, want)


def m_user_pool_client_oauth_helper_on_cognito(ctx):
    """The inline Python of UserPoolClientOAuthFunction, run against moto's Cognito with
    the client as the template creates it (moto's CloudFormation has no Cognito, and runs
    no custom resource)."""
    tpl = ctx["template"]
    if "UserPoolClientOAuth" not in tpl.resources:
        return
    idp = boto3.client("cognito-idp", region_name=REGION)
    pool = idp.create_user_pool(PoolName="rill-users")["UserPool"]["Id"]
    props = {k: v for k, v in tpl.resources["UserPoolClient"]["Properties"].items() if k != "UserPoolId"}
    client = idp.create_user_pool_client(UserPoolId=pool, **props)["UserPoolClient"]
    before = {k: client[k] for k in ("ExplicitAuthFlows", "PreventUserExistenceErrors",
                                     "EnableTokenRevocation", "AccessTokenValidity",
                                     "RefreshTokenValidity", "TokenValidityUnits") if k in client}
    assert "AllowedOAuthFlows" not in client, client

    sent = []
    cfnresponse = type(sys)("cfnresponse")
    cfnresponse.SUCCESS, cfnresponse.FAILED = "SUCCESS", "FAILED"
    cfnresponse.send = lambda event, context, status, data, physical_id, reason=None: \
        sent.append((status, physical_id, reason))
    sys.modules["cfnresponse"] = cfnresponse
    code = {}
    exec(tpl.resources["UserPoolClientOAuthFunction"]["Properties"]["Code"]["ZipFile"], code)
    web = "https://d111111abcdef8.cloudfront.net"
    event = {"RequestType": "Create", "ResourceProperties": {
        "UserPoolId": pool, "ClientId": client["ClientId"],
        "Scopes": ["openid", "profile", "email"], "CallbackUrls": [web, web + "/"],
        "LogoutUrls": [web, web + "/"]}}
    code["handler"](event, None)
    assert sent == [("SUCCESS", client["ClientId"], None)], sent
    after = idp.describe_user_pool_client(UserPoolId=pool, ClientId=client["ClientId"])["UserPoolClient"]
    assert after["AllowedOAuthFlows"] == ["code"] and after["AllowedOAuthFlowsUserPoolClient"] is True
    assert after["AllowedOAuthScopes"] == ["openid", "profile", "email"]
    assert after["CallbackURLs"] == [web, web + "/"] and after["LogoutURLs"] == [web, web + "/"]
    assert {k: after.get(k) for k in before} == before, "settings the helper must keep were reset"
    # A failure is reported to CloudFormation (which rolls back), never left hanging.
    sent.clear()
    code["handler"](dict(event, ResourceProperties=dict(event["ResourceProperties"], ClientId="nope")), None)
    assert [s[0] for s in sent] == ["FAILED"] and sent[0][2], sent
    # Delete changes nothing (CloudFormation deletes the client itself).
    sent.clear()
    code["handler"](dict(event, RequestType="Delete"), None)
    assert [s[0] for s in sent] == ["SUCCESS"], sent


def m_outputs_name_the_issuer(ctx):
    out, p = ctx["outputs"], ctx["params"]
    if p.get("JwtIssuer"):
        assert out["Issuer"] == p["JwtIssuer"], out
    elif p.get("CreateUserPool", "true") == "true":
        assert out["Issuer"].startswith(f"https://cognito-idp.{REGION}.amazonaws.com/"), out
        assert out["AuthDomainUrl"].endswith(f".auth.{REGION}.amazoncognito.com"), out
        assert {"UserPoolId", "UserPoolClientId"} <= set(out), out
        # The web app's config.json: what its Sign in needs, as web/src/client/oidc.ts reads it.
        web = json.loads(out["WebConfig"])
        assert web == {"auth": {"domain": out["AuthDomainUrl"], "clientId": out["UserPoolClientId"]}}, web
    else:
        assert not {"Issuer", "UserPoolId", "AuthDomainUrl", "WebConfig"} & set(out), out


TEMPLATE_CHECKS = checks(globals(), "t_")
MOTO_CHECKS = checks(globals(), "m_")
