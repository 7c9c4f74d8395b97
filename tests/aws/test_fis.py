"""Fault injection through AWS FIS's API, driven by botocore against `herald
serve` in its development mode (where fault injection is on): the action
catalogue, templates validated as FIS does, and experiments whose Lambda
actions (error, delay, HTTP integration response) a client measures on its
own invocations, until they complete or are stopped.

Run by scripts/test (HERALD_BIN names the binary)."""

import json
import shutil
import tempfile
import time
import unittest

from botocore.exceptions import ClientError

from test_admin import make_client, start, stop
from test_functions import zip_of

OK = "export const handler = async (event) => ({ ok: true, n: event.n ?? 0 });"
ROLE = "arn:aws:iam::123456789012:role/fis"


class Fis(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp(prefix="herald-fis-")
        cls.server = start(cls.data)
        cls.fis = make_client(cls.server, "fis")
        cls.lam = make_client(cls.server, "lambda")
        cls.arn = cls.lam.create_function(
            FunctionName="victim", Runtime="nodejs22.x", Role=ROLE, Handler="index.handler",
            Code={"ZipFile": zip_of({"index.mjs": OK})})["FunctionArn"]

    @classmethod
    def tearDownClass(cls):
        stop(cls.server)
        shutil.rmtree(cls.data, ignore_errors=True)

    def error(self, call):
        with self.assertRaises(ClientError) as caught:
            call()
        e = caught.exception.response
        return e["Error"]["Code"], e["Error"].get("Message", ""), e["ResponseMetadata"]["HTTPStatusCode"]

    def invoke(self, n=1):
        r = self.lam.invoke(FunctionName="victim", Payload=json.dumps({"n": n}).encode())
        return r.get("FunctionError"), json.loads(r["Payload"].read())

    def template(self, action_id, parameters, name="act"):
        return self.fis.create_experiment_template(
            clientToken=str(time.time()), description=f"{action_id} on victim", roleArn=ROLE,
            stopConditions=[{"source": "none"}],
            targets={"Functions": {"resourceType": "aws:lambda:function",
                                   "resourceArns": [self.arn], "selectionMode": "ALL"}},
            actions={name: {"actionId": action_id, "parameters": parameters,
                            "targets": {"Functions": "Functions"}}},
        )["experimentTemplate"]

    def wait_for(self, experiment_id, status, within=15):
        deadline = time.time() + within
        while True:
            e = self.fis.get_experiment(id=experiment_id)["experiment"]
            if e["state"]["status"] == status:
                return e
            self.assertLess(time.time(), deadline, f"{experiment_id} is {e['state']}")
            time.sleep(0.05)

    def test_the_catalogue_lists_lambdas_actions_and_heralds(self):
        ids = {a["id"] for a in self.fis.list_actions()["actions"]}
        for expected in ["aws:lambda:invocation-add-delay", "aws:lambda:invocation-error",
                         "aws:lambda:invocation-http-integration-response",
                         "herald:engine:drop-messages", "herald:appsync:close-connections"]:
            self.assertIn(expected, ids)
        a = self.fis.get_action(id="aws:lambda:invocation-add-delay")["action"]
        self.assertEqual(a["targets"], {"Functions": {"resourceType": "aws:lambda:function"}})
        self.assertTrue(a["parameters"]["duration"]["required"])
        self.assertFalse(a["parameters"]["startupDelayMilliseconds"]["required"])
        code, _, status = self.error(lambda: self.fis.get_action(id="aws:ec2:stop-instances"))
        self.assertEqual((code, status), ("ResourceNotFoundException", 404))

    def test_invocation_error_until_stopped(self):
        t = self.template("aws:lambda:invocation-error", {"duration": "PT5M"})
        self.assertTrue(t["id"].startswith("EXT"))
        self.assertEqual(self.fis.get_experiment_template(id=t["id"])["experimentTemplate"]["actions"],
                         t["actions"])
        self.assertEqual(self.invoke(), (None, {"ok": True, "n": 1}))
        e = self.fis.start_experiment(clientToken="a", experimentTemplateId=t["id"])["experiment"]
        self.assertEqual(e["state"]["status"], "running")
        self.wait_for(e["id"], "running")
        err, payload = self.invoke()
        self.assertEqual(err, "Unhandled")
        self.assertEqual(payload["errorType"], "FaultInjectionError")
        self.assertIn(e["id"], payload["errorMessage"])
        listed = self.fis.list_experiments(experimentTemplateId=t["id"])["experiments"]
        self.assertEqual([x["id"] for x in listed], [e["id"]])
        stopped = self.fis.stop_experiment(id=e["id"])["experiment"]
        self.assertIn(stopped["state"]["status"], ("stopping", "stopped"))
        done = self.wait_for(e["id"], "stopped")
        self.assertEqual(done["actions"]["act"]["state"]["status"], "stopped")
        self.assertIn("endTime", done)
        self.assertEqual(self.invoke(), (None, {"ok": True, "n": 1}))
        self.fis.delete_experiment_template(id=t["id"])
        code, _, _ = self.error(lambda: self.fis.get_experiment_template(id=t["id"]))
        self.assertEqual(code, "ResourceNotFoundException")

    def test_added_delay_is_measured_and_the_experiment_completes(self):
        t = self.template("aws:lambda:invocation-add-delay",
                          {"duration": "PT2S", "startupDelayMilliseconds": "400"})
        started = time.monotonic()
        self.invoke()
        plain = time.monotonic() - started
        e = self.fis.start_experiment(clientToken="b", experimentTemplateId=t["id"])["experiment"]
        started = time.monotonic()
        self.assertEqual(self.invoke(), (None, {"ok": True, "n": 1}))
        delayed = time.monotonic() - started
        self.assertGreaterEqual(delayed, 0.4, f"delayed {delayed:.3f} s (plain {plain:.3f} s)")
        done = self.wait_for(e["id"], "completed", within=20)
        self.assertEqual(done["actions"]["act"]["state"]["status"], "completed")
        started = time.monotonic()
        self.invoke()
        self.assertLess(time.monotonic() - started, 0.4)

    def test_http_integration_response_replaces_the_answer(self):
        t = self.template("aws:lambda:invocation-http-integration-response",
                          {"duration": "PT5M", "statusCode": "503", "contentTypeHeader": "application/json"})
        e = self.fis.start_experiment(clientToken="c", experimentTemplateId=t["id"])["experiment"]
        err, payload = self.invoke()
        self.assertIsNone(err)
        self.assertEqual(payload["statusCode"], 503)
        self.assertEqual(payload["headers"], {"Content-Type": "application/json"})
        self.fis.stop_experiment(id=e["id"])
        self.wait_for(e["id"], "stopped")

    def test_a_percentage_of_invocations(self):
        t = self.template("aws:lambda:invocation-error", {"duration": "PT5M", "invocationPercentage": "50"})
        e = self.fis.start_experiment(clientToken="d", experimentTemplateId=t["id"])["experiment"]
        failed = sum(1 for i in range(200) if self.invoke(i)[0] == "Unhandled")
        self.fis.stop_experiment(id=e["id"])
        self.wait_for(e["id"], "stopped")
        # Binomial(200, 0.5): outside 60..140 happens less than once in 10^8 runs.
        self.assertTrue(60 <= failed <= 140, f"{failed} of 200 failed")

    def test_templates_are_validated_as_fis_does(self):
        cases = [
            ({"actionId": "aws:lambda:invocation-explode", "parameters": {"duration": "PT1M"}}, "not an action"),
            ({"actionId": "aws:lambda:invocation-error", "parameters": {}}, "requires the parameter duration"),
            ({"actionId": "aws:lambda:invocation-error", "parameters": {"duration": "1 minute"}}, "Invalid duration"),
            ({"actionId": "aws:lambda:invocation-error",
              "parameters": {"duration": "PT1M", "invocationPercentage": "150"}}, "invocationPercentage"),
            ({"actionId": "herald:engine:drop-messages", "parameters": {"duration": "PT1M"}}, "needs the target Apis"),
        ]
        for action, says in cases:
            if "targets" not in action and action["actionId"].startswith("aws:lambda"):
                action["targets"] = {"Functions": "Functions"}
            code, message, status = self.error(lambda: self.fis.create_experiment_template(
                clientToken="x", description="bad", roleArn=ROLE, stopConditions=[{"source": "none"}],
                targets={"Functions": {"resourceType": "aws:lambda:function",
                                       "resourceArns": [self.arn], "selectionMode": "ALL"}},
                actions={"a": action}))
            self.assertEqual((code, status), ("ValidationException", 400), message)
            self.assertIn(says, message)
        code, _, status = self.error(lambda: self.fis.start_experiment(
            clientToken="x", experimentTemplateId="EXTnotthere"))
        self.assertEqual((code, status), ("ResourceNotFoundException", 404))

    def test_a_missing_target_fails_the_experiment(self):
        t = self.fis.create_experiment_template(
            clientToken="y", description="gone", roleArn=ROLE, stopConditions=[{"source": "none"}],
            targets={"F": {"resourceType": "aws:lambda:function",
                           "resourceArns": [self.arn.replace("victim", "nobody")], "selectionMode": "ALL"}},
            actions={"a": {"actionId": "aws:lambda:invocation-error", "parameters": {"duration": "PT1M"},
                           "targets": {"Functions": "F"}}})["experimentTemplate"]
        e = self.fis.start_experiment(clientToken="y", experimentTemplateId=t["id"])["experiment"]
        failed = self.wait_for(e["id"], "failed")
        self.assertIn("nobody", failed["state"]["reason"])
        self.assertEqual(self.invoke(), (None, {"ok": True, "n": 1}))


if __name__ == "__main__":
    unittest.main()
