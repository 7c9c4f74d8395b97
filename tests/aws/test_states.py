"""Step Functions' API driven by botocore against `herald serve` in its
development mode: state machines, executions and their history, both query
languages with variables, Retry and Catch, Map and Parallel, a Lambda task
(a JavaScript function made through Lambda's API), an HTTP task against a
receiver run here, a task token, TestState and definition validation.

Run by scripts/test (HERALD_BIN names the binary)."""

import http.server
import json
import shutil
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

from botocore.exceptions import ClientError

from test_admin import make_client, start, stop
from test_functions import zip_of

ROLE = "arn:aws:iam::123456789012:role/sfn"


def publish_events(server, channel, payloads):
    """Publish over HTTP with the API key: (status, answer or None)."""
    body = json.dumps({"channel": channel, "events": [json.dumps(p) for p in payloads]}).encode()
    req = urllib.request.Request(f"http://{server['public']}/event", data=body,
                                 headers={"content-type": "application/json", "x-api-key": server["api_key"]})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, None


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers every POST with 200 and {"seen": <body>}, remembering bodies."""

    bodies = []
    headers_seen = []
    arrived = threading.Event()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        Receiver.bodies.append(body)
        Receiver.headers_seen.append({k.lower(): v for k, v in self.headers.items()} | {":path": self.path})
        Receiver.arrived.set()
        answer = json.dumps({"seen": json.loads(body) if body else None}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class StepFunctionsApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp(prefix="herald-states-")
        cls.server = start(cls.data)
        cls.sfn = make_client(cls.server, "stepfunctions")
        cls.lam = make_client(cls.server, "lambda")
        cls.receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=cls.receiver.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.receiver.shutdown()
        stop(cls.server)
        shutil.rmtree(cls.data, ignore_errors=True)

    def error(self, call):
        with self.assertRaises(ClientError) as caught:
            call()
        e = caught.exception.response["Error"]
        return e["Code"], e.get("Message", "")

    def machine(self, name, definition, kind="STANDARD"):
        return self.sfn.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn=ROLE, type=kind)["stateMachineArn"]

    def run_to_end(self, arn, payload):
        e = self.sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))["executionArn"]
        deadline = time.time() + 20
        while time.time() < deadline:
            d = self.sfn.describe_execution(executionArn=e)
            if d["status"] != "RUNNING":
                return d
            time.sleep(0.05)
        self.fail("the execution did not finish")

    def test_machines_and_validation(self):
        arn = self.machine("hello", {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
        d = self.sfn.describe_state_machine(stateMachineArn=arn)
        self.assertEqual((d["name"], d["type"], d["status"], d["roleArn"]), ("hello", "STANDARD", "ACTIVE", ROLE))
        self.assertIn("hello", [m["name"] for m in self.sfn.list_state_machines()["stateMachines"]])
        bad = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}
        code, message = self.error(lambda: self.sfn.create_state_machine(
            name="bad", definition=json.dumps(bad), roleArn=ROLE))
        self.assertEqual(code, "InvalidDefinition")
        self.assertIn("Missing 'Next' target: Nowhere at /States/A/Next", message)
        v = self.sfn.validate_state_machine_definition(definition=json.dumps(bad))
        self.assertEqual(v["result"], "FAIL")
        self.assertEqual(v["diagnostics"][0]["code"], "MISSING_TRANSITION_TARGET")
        self.assertEqual(v["diagnostics"][0]["location"], "/States/A/Next")
        self.assertEqual(self.sfn.validate_state_machine_definition(
            definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))["result"], "OK")
        self.assertEqual(self.error(lambda: self.sfn.create_state_machine(
            name="hello", definition=json.dumps({"StartAt": "B", "States": {"B": {"Type": "Succeed"}}}),
            roleArn=ROLE))[0], "StateMachineAlreadyExists")
        self.sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(
            {"StartAt": "B", "States": {"B": {"Type": "Succeed"}}}))
        self.assertIn('"B"', self.sfn.describe_state_machine(stateMachineArn=arn)["definition"])
        self.sfn.delete_state_machine(stateMachineArn=arn)
        self.assertEqual(self.error(lambda: self.sfn.describe_state_machine(stateMachineArn=arn))[0],
                         "StateMachineDoesNotExist")

    def test_jsonata_with_variables_map_parallel_and_catch(self):
        definition = {
            "QueryLanguage": "JSONata", "StartAt": "Setup",
            "States": {
                "Setup": {"Type": "Pass", "Assign": {"rate": "{% $states.input.rate %}"},
                          "Output": "{% $states.input.items %}", "Next": "Each"},
                "Each": {"Type": "Map", "Items": "{% $states.input %}", "MaxConcurrency": 2,
                         "ItemProcessor": {"StartAt": "Price", "States": {
                             "Price": {"Type": "Pass", "Output": "{% $states.input * $rate %}", "End": True}}},
                         "Assign": {"total": "{% $sum($states.result) %}"},
                         "Next": "Both"},
                "Both": {"Type": "Parallel", "Branches": [
                    {"StartAt": "Double", "States": {"Double": {"Type": "Pass", "Output": "{% $total * 2 %}", "End": True}}},
                    {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Custom.Boom", "Cause": "{% 'total was ' & $string($total) %}"}}}],
                    "Catch": [{"ErrorEquals": ["Custom.Boom"], "Next": "Done",
                               "Output": "{% {'caught': $states.errorOutput.Error, 'cause': $states.errorOutput.Cause, 'total': $total} %}"}],
                    "Next": "Done"},
                "Done": {"Type": "Succeed"}}}
        arn = self.machine("jsonata", definition)
        d = self.run_to_end(arn, {"rate": 2, "items": [1, 2, 3]})
        self.assertEqual(d["status"], "SUCCEEDED", d)
        self.assertEqual(json.loads(d["output"]), {"caught": "Custom.Boom", "cause": "total was 12", "total": 12})
        events = self.sfn.get_execution_history(executionArn=d["executionArn"])["events"]
        types = [e["type"] for e in events]
        self.assertEqual(types[0], "ExecutionStarted")
        self.assertEqual(types[-1], "ExecutionSucceeded")
        for t in ["PassStateEntered", "MapStateEntered", "MapStateStarted", "ParallelStateEntered", "FailStateEntered"]:
            self.assertIn(t, types)
        self.assertEqual([e["id"] for e in events], list(range(1, len(events) + 1)))
        listed = self.sfn.list_executions(stateMachineArn=arn)["executions"]
        self.assertEqual(listed[0]["executionArn"], d["executionArn"])

    def test_jsonpath_lambda_task_with_retry_and_choice(self):
        self.lam.create_function(
            FunctionName="flaky", Runtime="nodejs22.x", Role=ROLE, Handler="index.handler",
            Code={"ZipFile": zip_of({"index.mjs": """
                export const handler = (e) => {
                  if (e.retry === 0) { const err = new Error('not yet'); err.name = 'Flaky'; throw err; }
                  return {n: e.n * 10, retry: e.retry};
                };"""})})
        definition = {
            "StartAt": "Call",
            "States": {
                "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                         "Parameters": {"FunctionName": "flaky",
                                        "Payload": {"n.$": "$.n", "retry.$": "$$.State.RetryCount"}},
                         "ResultSelector": {"value.$": "$.Payload.n"}, "ResultPath": "$.result",
                         "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1}],
                         "Next": "Big?"},
                "Big?": {"Type": "Choice", "Choices": [
                    {"Variable": "$.result.value", "NumericGreaterThan": 25, "Next": "Big"}], "Default": "Small"},
                "Big": {"Type": "Pass", "Parameters": {"size": "big", "msg.$": "States.Format('{} is big', $.result.value)"}, "End": True},
                "Small": {"Type": "Pass", "Result": {"size": "small"}, "End": True}}}
        arn = self.machine("lambda", definition)
        d = self.run_to_end(arn, {"n": 3})
        self.assertEqual(d["status"], "SUCCEEDED", d)
        self.assertEqual(json.loads(d["output"]), {"size": "big", "msg": "30 is big"})
        types = [e["type"] for e in self.sfn.get_execution_history(executionArn=d["executionArn"])["events"]]
        self.assertEqual(types.count("TaskFailed"), 1)
        self.assertEqual(types.count("TaskSucceeded"), 1)
        # A failure no retrier or catcher takes fails the execution, with AWS's names.
        failing = self.machine("failing", {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "c"}}})
        d = self.run_to_end(failing, {})
        self.assertEqual((d["status"], d["error"], d["cause"]), ("FAILED", "E", "c"))

    def test_http_task_and_task_token(self):
        port = self.receiver.server_address[1]
        definition = {
            "QueryLanguage": "JSONata", "StartAt": "Notify",
            "States": {
                "Notify": {"Type": "Task", "Resource": "arn:aws:states:::http:invoke",
                           "Arguments": {"ApiEndpoint": f"http://127.0.0.1:{port}/hook", "Method": "POST",
                                         "RequestBody": {"order": "{% $states.input.order %}"}},
                           "Output": "{% $states.result.ResponseBody %}", "Next": "Approve"},
                "Approve": {"Type": "Task", "Resource": "arn:aws:states:::http:invoke.waitForTaskToken",
                            "Arguments": {"ApiEndpoint": f"http://127.0.0.1:{port}/approve", "Method": "POST",
                                          "RequestBody": {"token": "{% $states.context.Task.Token %}"}},
                            "HeartbeatSeconds": 30, "End": True}}}
        arn = self.machine("approval", definition)
        Receiver.bodies.clear()
        e = self.sfn.start_execution(stateMachineArn=arn, input=json.dumps({"order": "o-1"}))["executionArn"]
        deadline = time.time() + 10
        while len(Receiver.bodies) < 2 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(json.loads(Receiver.bodies[0]), {"order": "o-1"})
        token = json.loads(Receiver.bodies[1])["token"]
        self.assertEqual(self.sfn.describe_execution(executionArn=e)["status"], "RUNNING")
        self.sfn.send_task_heartbeat(taskToken=token)
        self.sfn.send_task_success(taskToken=token, output=json.dumps({"approved": True}))
        deadline = time.time() + 10
        while self.sfn.describe_execution(executionArn=e)["status"] == "RUNNING" and time.time() < deadline:
            time.sleep(0.05)
        d = self.sfn.describe_execution(executionArn=e)
        self.assertEqual((d["status"], json.loads(d["output"])), ("SUCCEEDED", {"approved": True}))
        self.assertEqual(self.error(lambda: self.sfn.send_task_success(taskToken=token, output="{}"))[0],
                         "TaskDoesNotExist")

    def test_http_task_with_a_connections_authorization(self):
        events = make_client(self.server, "events")
        conn = events.create_connection(
            Name="sfn-hook", AuthorizationType="API_KEY",
            AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "k-sfn"},
                            "InvocationHttpParameters": {"QueryStringParameters": [
                                {"Key": "src", "Value": "herald", "IsValueSecret": False}]}})
        port = self.receiver.server_address[1]
        arn = self.machine("authed", {"QueryLanguage": "JSONata", "StartAt": "Call", "States": {"Call": {
            "Type": "Task", "Resource": "arn:aws:states:::http:invoke",
            "Arguments": {"ApiEndpoint": f"http://127.0.0.1:{port}/authed", "Method": "POST",
                          "Authentication": {"ConnectionArn": conn["ConnectionArn"]},
                          "QueryParameters": {"n": "1"}, "RequestBody": {"x": 1}},
            "Output": "{% $states.result.StatusCode %}", "End": True}}})
        Receiver.headers_seen.clear()
        d = self.run_to_end(arn, {})
        self.assertEqual((d["status"], json.loads(d["output"])), ("SUCCEEDED", 200), d)
        h = Receiver.headers_seen[-1]
        self.assertEqual(h["x-api-key"], "k-sfn")
        self.assertEqual(h[":path"], "/authed?src=herald&n=1")

    def test_an_event_bus_rule_starts_executions(self):
        arn = self.machine("on-order", {"QueryLanguage": "JSONata", "StartAt": "A", "States": {
            "A": {"Type": "Pass", "Output": "{% $states.input.detail.id %}", "End": True}}})
        events = make_client(self.server, "events")
        events.put_rule(Name="orders-to-sfn", EventPattern='{"source": ["shop"]}')
        r = events.put_targets(Rule="orders-to-sfn", Targets=[{"Id": "sfn", "Arn": arn, "RoleArn": ROLE}])
        self.assertEqual(r["FailedEntryCount"], 0, r)
        events.put_events(Entries=[{"Source": "shop", "DetailType": "Order", "Detail": json.dumps({"id": "o-7"})}])
        deadline = time.time() + 10
        done = []
        while time.time() < deadline and not done:
            done = [e for e in self.sfn.list_executions(stateMachineArn=arn)["executions"] if e["status"] == "SUCCEEDED"]
            time.sleep(0.05)
        self.assertEqual(len(done), 1)
        d = self.sfn.describe_execution(executionArn=done[0]["executionArn"])
        self.assertEqual(json.loads(d["output"]), "o-7")
        self.assertEqual(json.loads(d["input"])["source"], "shop")

    def test_channel_handlers_run_state_machines(self):
        """A data source naming a state machine (Herald's extension of
        lambdaFunctionArn): a REQUEST_RESPONSE onPublish runs an EXPRESS
        machine whose output is the handler's answer; an EVENT one starts a
        STANDARD execution per publish."""
        appsync = make_client(self.server, "appsync")
        api_id = appsync.list_apis()["apis"][0]["apiId"]
        judge = self.machine("judge-events", {"QueryLanguage": "JSONata", "StartAt": "Judge", "States": {
            "Judge": {"Type": "Pass", "End": True, "Output": (
                "{% {'events': [$states.input.events.(payload.bad ? {'id': id, 'error': 'bad event'}"
                " : {'id': id, 'payload': payload})]} %}")}}}, kind="EXPRESS")
        audit = self.machine("audit-events", {"QueryLanguage": "JSONata", "StartAt": "Note", "States": {
            "Note": {"Type": "Pass", "End": True, "Output": "{% $states.input.events[0].payload %}"}}})
        for name, arn in (("judge_sfn", judge), ("audit_sfn", audit)):
            appsync.create_data_source(apiId=api_id, name=name, type="AWS_LAMBDA",
                                       lambdaConfig={"lambdaFunctionArn": arn})
        code, message = self.error(lambda: appsync.create_data_source(
            apiId=api_id, name="nosuch", type="AWS_LAMBDA",
            lambdaConfig={"lambdaFunctionArn": judge.replace("judge-events", "missing")}))
        self.assertEqual(code, "BadRequestException")
        self.assertIn("No state machine", message)
        for ns, source, invoke in (("judged-sfn", "judge_sfn", "REQUEST_RESPONSE"), ("audited", "audit_sfn", "EVENT")):
            appsync.create_channel_namespace(apiId=api_id, name=ns, handlerConfigs={"onPublish": {
                "behavior": "DIRECT", "integration": {"dataSourceName": source,
                                                      "lambdaConfig": {"invokeType": invoke}}}})
        status, answer = publish_events(self.server, "/judged-sfn/a", [{"ok": 1}, {"bad": 1}, {"ok": 2}])
        self.assertEqual(status, 200)
        self.assertEqual([f["index"] for f in answer["failed"]], [1])
        self.assertEqual(len(answer["successful"]), 2)
        self.assertEqual(publish_events(self.server, "/audited/x", [{"order": "o-9"}])[0], 200)
        deadline = time.time() + 10
        done = []
        while time.time() < deadline and not done:
            done = [e for e in self.sfn.list_executions(stateMachineArn=audit)["executions"]
                    if e["status"] == "SUCCEEDED"]
            time.sleep(0.05)
        self.assertEqual(len(done), 1)
        d = self.sfn.describe_execution(executionArn=done[0]["executionArn"])
        self.assertEqual(json.loads(d["output"]), {"order": "o-9"})
        self.assertEqual(json.loads(d["input"])["info"]["channel"]["path"], "/audited/x")
        # A STANDARD machine cannot answer a REQUEST_RESPONSE handler: the
        # publish fails (500) with the reason in Herald's log, nothing is sent.
        appsync.update_channel_namespace(apiId=api_id, name="audited", handlerConfigs={"onPublish": {
            "behavior": "DIRECT", "integration": {"dataSourceName": "audit_sfn",
                                                  "lambdaConfig": {"invokeType": "REQUEST_RESPONSE"}}}})
        self.assertEqual(publish_events(self.server, "/audited/x", [{"order": "o-10"}])[0], 500)
        for ns in ("judged-sfn", "audited"):
            appsync.delete_channel_namespace(apiId=api_id, name=ns)
        for name in ("judge_sfn", "audit_sfn"):
            appsync.delete_data_source(apiId=api_id, name=name)

    def test_express_sync_stop_and_test_state(self):
        arn = self.machine("quick", {"QueryLanguage": "JSONata", "StartAt": "A", "States": {
            "A": {"Type": "Pass", "Output": "{% {'twice': $states.input.n * 2} %}", "End": True}}}, kind="EXPRESS")
        # botocore prefixes the host of StartSyncExecution and TestState with "sync-" (AWS's
        # endpoint); against Herald's one endpoint the prefix is turned off.
        sync = make_client(self.server, "stepfunctions", inject_host_prefix=False)
        r = sync.start_sync_execution(stateMachineArn=arn, input=json.dumps({"n": 21}))
        self.assertEqual((r["status"], json.loads(r["output"])), ("SUCCEEDED", {"twice": 42}))
        slow = self.machine("slow", {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}})
        self.assertEqual(self.error(lambda: sync.start_sync_execution(stateMachineArn=slow))[0],
                         "StateMachineTypeNotSupported")
        e = self.sfn.start_execution(stateMachineArn=slow, name="run-1")["executionArn"]
        self.assertTrue(e.endswith(":slow:run-1"), e)
        self.assertEqual(self.error(lambda: self.sfn.start_execution(
            stateMachineArn=slow, name="run-1", input='{"other": 1}'))[0], "ExecutionAlreadyExists")
        self.sfn.stop_execution(executionArn=e, error="Stopped", cause="by the test")
        d = self.sfn.describe_execution(executionArn=e)
        self.assertEqual((d["status"], d["error"]), ("ABORTED", "Stopped"))
        self.assertEqual(self.error(lambda: self.sfn.start_execution(stateMachineArn=slow, input="{not json"))[0],
                         "InvalidExecutionInput")
        # TestState: one state, its output, next state and variables.
        t = sync.test_state(
            definition=json.dumps({"Type": "Pass", "QueryLanguage": "JSONata",
                                   "Assign": {"seen": "{% $states.input.a %}", "before": "{% $seen %}"},
                                   "Output": "{% $states.input.a + $seen %}", "Next": "After"}),
            roleArn=ROLE, input=json.dumps({"a": 5}), variables=json.dumps({"seen": 1}),
            inspectionLevel="DEBUG")
        self.assertEqual((t["status"], json.loads(t["output"]), t["nextState"]), ("SUCCEEDED", 6, "After"))
        self.assertEqual(json.loads(t["inspectionData"]["variables"]), {"seen": 5, "before": 1})
        t = sync.test_state(
            definition=json.dumps({"Type": "Fail", "Error": "Oops", "Cause": "because"}), roleArn=ROLE)
        self.assertEqual((t["status"], t["error"], t["cause"]), ("FAILED", "Oops", "because"))
        t = sync.test_state(
            definition=json.dumps({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                                   "Parameters": {"FunctionName": "missing"},
                                   "Retry": [{"ErrorEquals": ["States.ALL"]}], "End": True}), roleArn=ROLE)
        self.assertEqual(t["status"], "RETRIABLE")


if __name__ == "__main__":
    unittest.main()
