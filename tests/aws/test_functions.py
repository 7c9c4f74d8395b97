"""Functions through Lambda's API, driven by botocore (and the AWS CLI)
against `herald serve` in its development mode: JavaScript functions from
zips, created, invoked (sync, async, dry run), updated and deleted; an HTTP
function served by a Python `http.server`; and the error paths with the
exceptions and function errors Lambda gives.

Run by scripts/test (HERALD_BIN names the binary)."""

import base64
import http.server
import io
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
import zipfile

from botocore.exceptions import ClientError

from test_admin import make_client, start, stop


def zip_of(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


ECHO = """
import { greet } from './lib/greet.mjs';
let inits = 0; inits++;
export const handler = async (event, context) => ({
  echo: event,
  greeting: greet(process.env.WHO || 'nobody'),
  name: context.functionName,
  arn: context.invokedFunctionArn,
  requestId: context.awsRequestId,
  remainingOk: context.getRemainingTimeInMillis() > 0,
  inits,
});
"""
GREET = "export const greet = (who) => `hello ${who}`;"


class Seen(http.server.BaseHTTPRequestHandler):
    """An HTTP function in Python: doubles `n`, fails on `fail`."""
    calls = []
    called = threading.Event()
    bodies = queue.Queue()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Seen.calls.append((dict(self.headers), body))
        Seen.bodies.put(body)
        Seen.called.set()
        if body.get("fail"):
            out = json.dumps({"errorType": "ValueError", "errorMessage": "asked to fail"}).encode()
            self.send_response(200)
            self.send_header("x-amz-function-error", "Unhandled")
        else:
            out = json.dumps({"n": body.get("n", 0) * 2, "lang": "python"}).encode()
            self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


class Functions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp(prefix="herald-functions-")
        cls.server = start(cls.data)
        cls.lam = make_client(cls.server, "lambda")
        cls.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Seen)
        threading.Thread(target=cls.http.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.http.shutdown()
        stop(cls.server)
        shutil.rmtree(cls.data, ignore_errors=True)

    def error(self, call):
        with self.assertRaises(ClientError) as caught:
            call()
        e = caught.exception.response["Error"]
        return e["Code"], e.get("Message", "")

    def create(self, name, files, handler="index.handler", **kw):
        return self.lam.create_function(
            FunctionName=name, Runtime="nodejs22.x", Role="arn:aws:iam::123456789012:role/x",
            Handler=handler, Code={"ZipFile": zip_of(files)}, **kw)

    def invoke(self, name, payload, **kw):
        r = self.lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kw)
        return r, json.loads(r["Payload"].read() or b"null")

    def test_create_invoke_update_delete(self):
        created = self.create("echo", {"index.mjs": ECHO, "lib/greet.mjs": GREET},
                              Environment={"Variables": {"WHO": "herald"}}, Timeout=5)
        self.assertEqual(created["FunctionName"], "echo")
        self.assertTrue(created["FunctionArn"].endswith(":function:echo"))
        self.assertEqual((created["Timeout"], created["MemorySize"], created["State"]), (5, 128, "Active"))
        got = self.lam.get_function(FunctionName="echo")["Configuration"]
        self.assertEqual(got["CodeSha256"], created["CodeSha256"])
        self.assertIn("echo", [f["FunctionName"] for f in self.lam.list_functions()["Functions"]])

        r, out = self.invoke("echo", {"n": 1}, LogType="Tail")
        self.assertEqual(r["StatusCode"], 200)
        self.assertNotIn("FunctionError", r)
        self.assertEqual(r["ExecutedVersion"], "$LATEST")
        self.assertEqual(out["echo"], {"n": 1})
        self.assertEqual(out["greeting"], "hello herald")
        self.assertEqual(out["name"], "echo")
        self.assertTrue(out["remainingOk"])
        self.assertIn("REPORT RequestId: " + out["requestId"], base64.b64decode(r["LogResult"]).decode())
        # Init ran once: a second call reuses the initialized module.
        self.assertEqual(self.invoke("echo", {})[1]["inits"], 1)
        # By ARN too.
        self.assertEqual(self.invoke(created["FunctionArn"], {"x": 1})[1]["echo"], {"x": 1})

        self.assertEqual([v["Version"] for v in self.lam.list_versions_by_function(FunctionName="echo")["Versions"]], ["$LATEST"])
        self.assertEqual(self.lam.get_function_code_signing_config(FunctionName="echo")["FunctionName"], "echo")
        code, _ = self.error(lambda: self.lam.publish_version(FunctionName="echo"))
        self.assertEqual(code, "InvalidParameterValueException")
        self.assertEqual(self.lam.invoke(FunctionName="echo", InvocationType="DryRun")["StatusCode"], 204)
        self.assertEqual(self.lam.invoke(FunctionName="echo", InvocationType="Event", Payload=b"{}")["StatusCode"], 202)

        updated = self.lam.update_function_code(
            FunctionName="echo", ZipFile=zip_of({"index.mjs": "export const handler = (e) => ({v: 2, e});"}))
        self.assertNotEqual(updated["CodeSha256"], created["CodeSha256"])
        self.assertEqual(self.invoke("echo", {"a": 1})[1], {"v": 2, "e": {"a": 1}})
        cfg = self.lam.update_function_configuration(FunctionName="echo", Timeout=1, Description="second")
        self.assertEqual((cfg["Timeout"], cfg["Description"]), (1, "second"))
        code, _ = self.error(lambda: self.lam.update_function_configuration(FunctionName="echo", Timeout=901))
        self.assertEqual(code, "InvalidParameterValueException")

        self.lam.delete_function(FunctionName="echo")
        code, message = self.error(lambda: self.lam.get_function(FunctionName="echo"))
        self.assertEqual(code, "ResourceNotFoundException")
        self.assertIn("Function not found", message)

    def test_function_errors_have_lambdas_shape(self):
        self.create("fails", {"index.mjs": """
            export const handler = async (e) => {
              if (e.kind === 'throw') throw new TypeError('bad input');
              if (e.kind === 'loop') { for (;;) {} }
              if (e.kind === 'oom') { const a = []; for (;;) a.push(new Array(1e6).fill(7)); }
              return 'fine';
            };"""}, Timeout=1)
        r, out = self.invoke("fails", {"kind": "throw"})
        self.assertEqual((r["StatusCode"], r["FunctionError"]), (200, "Unhandled"))
        self.assertEqual((out["errorType"], out["errorMessage"]), ("TypeError", "bad input"))
        r, out = self.invoke("fails", {"kind": "loop"})
        self.assertEqual((r["FunctionError"], out["errorType"]), ("Unhandled", "Sandbox.Timedout"))
        r, out = self.invoke("fails", {"kind": "oom"})
        self.assertEqual((r["FunctionError"], out["errorType"]), ("Unhandled", "Runtime.OutOfMemory"))
        # And the function still serves.
        self.assertEqual(self.invoke("fails", {})[1], "fine")

        code, _ = self.error(lambda: self.lam.invoke(FunctionName="fails", Payload=b"{not json"))
        self.assertEqual(code, "InvalidRequestContentException")
        code, _ = self.error(lambda: self.lam.invoke(FunctionName="nosuch", Payload=b"{}"))
        self.assertEqual(code, "ResourceNotFoundException")

        # Reserved concurrency 0: every invocation is throttled.
        self.lam.put_function_concurrency(FunctionName="fails", ReservedConcurrentExecutions=0)
        self.assertEqual(self.lam.get_function_concurrency(FunctionName="fails")["ReservedConcurrentExecutions"], 0)
        code, _ = self.error(lambda: self.invoke("fails", {}))
        self.assertEqual(code, "TooManyRequestsException")
        self.lam.delete_function_concurrency(FunctionName="fails")
        self.assertEqual(self.invoke("fails", {})[1], "fine")
        self.lam.delete_function(FunctionName="fails")

    def test_bad_code_is_refused_at_create(self):
        code, message = self.error(lambda: self.create("syntax", {"index.mjs": "export const handler = (;"}))
        self.assertEqual(code, "InvalidParameterValueException")
        self.assertIn("SyntaxError", message)
        code, message = self.error(lambda: self.lam.create_function(
            FunctionName="badzip", Runtime="nodejs22.x", Role="r", Handler="index.handler",
            Code={"ZipFile": b"this is not a zip"}))
        self.assertEqual(code, "InvalidParameterValueException")
        self.assertIn("unzip", message)
        code, message = self.error(lambda: self.create("nohandler", {"main.mjs": GREET}))
        self.assertIn("Cannot find module 'index'", message)
        code, _ = self.error(lambda: self.create("bad name!", {"index.mjs": ECHO}))
        self.assertEqual(code, "InvalidParameterValueException")
        self.create("twice", {"index.mjs": "export const handler = () => 1;"})
        code, _ = self.error(lambda: self.create("twice", {"index.mjs": "export const handler = () => 1;"}))
        self.assertEqual(code, "ResourceConflictException")
        self.lam.delete_function(FunctionName="twice")
        code, _ = self.error(lambda: self.lam.list_functions() and self.lam.get_function(FunctionName="syntax"))
        self.assertEqual(code, "ResourceNotFoundException", "nothing was kept of a refused create")

    def test_an_http_function_in_python(self):
        url = f"http://127.0.0.1:{self.http.server_address[1]}/invoke"
        self.lam.create_function(FunctionName="py", Runtime="python3.13", Role="r", Handler="app.handler",
                                 Code={}, Environment={"Variables": {"HERALD_FUNCTION_URL": url}})
        r, out = self.invoke("py", {"n": 21})
        self.assertEqual(out, {"n": 42, "lang": "python"})
        headers, _ = Seen.calls[-1]
        lowered = {k.lower(): v for k, v in headers.items()}
        self.assertTrue(lowered["lambda-runtime-invoked-function-arn"].endswith(":function:py"))
        self.assertIn("lambda-runtime-aws-request-id", lowered)
        r, out = self.invoke("py", {"fail": True})
        self.assertEqual((r["FunctionError"], out["errorType"]), ("Unhandled", "ValueError"))
        # Asynchronously: the server gets the event.
        Seen.called.clear()
        self.assertEqual(self.lam.invoke(FunctionName="py", InvocationType="Event",
                                         Payload=json.dumps({"n": 5, "async": True}).encode())["StatusCode"], 202)
        self.assertTrue(Seen.called.wait(10))
        self.assertEqual(Seen.calls[-1][1], {"n": 5, "async": True})
        self.lam.delete_function(FunctionName="py")

    def record(self, predicate):
        """The next body the Python function receives that matches."""
        while True:
            body = Seen.bodies.get(timeout=15)
            if predicate(body):
                return body

    def test_async_outcomes_go_to_destinations(self):
        url = f"http://127.0.0.1:{self.http.server_address[1]}/sink"
        sink = self.lam.create_function(FunctionName="sink", Runtime="python3.13", Role="r", Handler="a.b",
                                        Code={}, Environment={"Variables": {"HERALD_FUNCTION_URL": url}})
        self.create("flaky", {"index.mjs": "export const handler = async (e) => { if (e.fail) throw new RangeError('no luck'); return {done: e.n}; };"})
        cfg = self.lam.put_function_event_invoke_config(
            FunctionName="flaky", MaximumRetryAttempts=0,
            DestinationConfig={"OnFailure": {"Destination": sink["FunctionArn"]},
                               "OnSuccess": {"Destination": sink["FunctionArn"]}})
        self.assertEqual(cfg["MaximumRetryAttempts"], 0)
        self.assertEqual(self.lam.get_function_event_invoke_config(FunctionName="flaky")["DestinationConfig"]["OnFailure"]["Destination"], sink["FunctionArn"])

        self.lam.invoke(FunctionName="flaky", InvocationType="Event", Payload=json.dumps({"fail": True, "tag": "f1"}).encode())
        failed = self.record(lambda b: b.get("requestPayload", {}).get("tag") == "f1")
        self.assertEqual(failed["requestContext"]["condition"], "RetriesExhausted")
        self.assertEqual(failed["requestContext"]["approximateInvokeCount"], 1)
        self.assertEqual(failed["responseContext"]["functionError"], "Unhandled")
        self.assertEqual(failed["responsePayload"]["errorType"], "RangeError")

        self.lam.invoke(FunctionName="flaky", InvocationType="Event", Payload=json.dumps({"n": 3, "tag": "s1"}).encode())
        ok = self.record(lambda b: b.get("requestPayload", {}).get("tag") == "s1")
        self.assertEqual((ok["requestContext"]["condition"], ok["responsePayload"]), ("Success", {"done": 3}))

        code, _ = self.error(lambda: self.lam.put_function_event_invoke_config(FunctionName="flaky", MaximumRetryAttempts=3))
        self.assertEqual(code, "InvalidParameterValueException")
        code, _ = self.error(lambda: self.lam.put_function_event_invoke_config(
            FunctionName="flaky", DestinationConfig={"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:123456789012:q"}}))
        self.assertEqual(code, "InvalidParameterValueException")
        self.lam.delete_function_event_invoke_config(FunctionName="flaky")
        code, _ = self.error(lambda: self.lam.get_function_event_invoke_config(FunctionName="flaky"))
        self.assertEqual(code, "ResourceNotFoundException")
        self.lam.delete_function(FunctionName="flaky")
        self.lam.delete_function(FunctionName="sink")

    def test_fetch_is_opt_in_and_limited_to_its_prefixes(self):
        base = f"http://127.0.0.1:{self.http.server_address[1]}"
        src = """
            export const handler = async (e) => {
              if (typeof fetch === 'undefined') return { fetch: 'absent' };
              try {
                const r = await fetch(e.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n: 4 }) });
                return { status: r.status, body: await r.json(), type: r.headers.get('Content-Type') };
              } catch (err) { return { refused: err.message }; }
            };"""
        self.create("nofetch", {"index.mjs": src})
        self.assertEqual(self.invoke("nofetch", {"url": base + "/x"})[1], {"fetch": "absent"})
        self.create("fetcher", {"index.mjs": src}, Environment={"Variables": {"HERALD_FETCH_ALLOW": base + "/allowed/"}})
        out = self.invoke("fetcher", {"url": base + "/allowed/doubler"})[1]
        self.assertEqual(out, {"status": 200, "body": {"n": 8, "lang": "python"}, "type": "application/json"})
        out = self.invoke("fetcher", {"url": base + "/elsewhere"})[1]
        self.assertIn("is not under HERALD_FETCH_ALLOW", out["refused"])
        self.lam.delete_function(FunctionName="nofetch")
        self.lam.delete_function(FunctionName="fetcher")

    def test_a_namespace_handler_backed_by_a_function(self):
        """AppSync's data source and handlerConfigs through the API: the
        namespace's DIRECT onPublish runs a Herald function in-process."""
        appsync = make_client(self.server, "appsync")
        api_id = appsync.list_apis()["apis"][0]["apiId"]
        fn = self.create("judge", {"index.mjs": """
            export const handler = async (ctx) => ({
              events: ctx.events.map((e) => e.payload.bad ? { id: e.id, error: 'bad event' } : { id: e.id, payload: e.payload }),
            });"""})
        ds = appsync.create_data_source(apiId=api_id, name="judge", type="AWS_LAMBDA",
                                        lambdaConfig={"lambdaFunctionArn": fn["FunctionArn"]})["dataSource"]
        self.assertEqual(ds["lambdaConfig"]["lambdaFunctionArn"], fn["FunctionArn"])
        self.assertIn("judge", [d["name"] for d in appsync.list_data_sources(apiId=api_id)["dataSources"]])
        configs = {"onPublish": {"behavior": "DIRECT", "integration": {
            "dataSourceName": "judge", "lambdaConfig": {"invokeType": "REQUEST_RESPONSE"}}}}
        appsync.create_channel_namespace(apiId=api_id, name="judged", handlerConfigs=configs)
        self.assertEqual(appsync.get_channel_namespace(apiId=api_id, name="judged")["channelNamespace"]["handlerConfigs"], configs)

        body = json.dumps({"channel": "/judged/a", "events": [json.dumps({"ok": 1}), json.dumps({"bad": 1})]}).encode()
        import urllib.request
        req = urllib.request.Request(f"http://{self.server['public']}/event", data=body,
                                     headers={"content-type": "application/json", "x-api-key": self.server["api_key"]})
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.load(r)
        self.assertEqual([f["index"] for f in answer["failed"]], [1])
        self.assertEqual(len(answer["successful"]), 1)

        code, message = self.error(lambda: appsync.delete_data_source(apiId=api_id, name="judge"))
        self.assertEqual(code, "BadRequestException")
        self.assertIn("judged", message)
        code, _ = self.error(lambda: appsync.create_channel_namespace(apiId=api_id, name="nods", handlerConfigs={
            "onPublish": {"behavior": "DIRECT", "integration": {"dataSourceName": "nosuch"}}}))
        self.assertEqual(code, "BadRequestException")
        code, _ = self.error(lambda: appsync.create_data_source(apiId=api_id, name="dyn", type="AMAZON_DYNAMODB",
                                                                dynamodbConfig={"tableName": "t", "awsRegion": "us-east-1"}))
        self.assertEqual(code, "BadRequestException")
        appsync.delete_channel_namespace(apiId=api_id, name="judged")
        appsync.delete_data_source(apiId=api_id, name="judge")
        code, _ = self.error(lambda: appsync.get_data_source(apiId=api_id, name="judge"))
        self.assertEqual(code, "NotFoundException")
        self.lam.delete_function(FunctionName="judge")

    def test_the_aws_cli_invokes(self):
        self.create("cli", {"index.js": "exports.handler = async (e) => ({ doubled: e.n * 2 });"})
        aws = os.path.join(os.path.dirname(os.path.realpath(sys.executable)), "aws")
        out = os.path.join(self.data, "out.json")
        env = dict(os.environ, **self.server["exports"], AWS_CONFIG_FILE="/dev/null",
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        run = subprocess.run([aws, "lambda", "invoke", "--function-name", "cli", "--payload", '{"n": 4}',
                              "--endpoint-url", self.server["admin"], out],
                             env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        with open(out) as f:
            self.assertEqual(json.load(f), {"doubled": 8})
        self.lam.delete_function(FunctionName="cli")


if __name__ == "__main__":
    unittest.main()
