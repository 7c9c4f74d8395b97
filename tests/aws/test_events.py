"""EventBridge's API driven by botocore and the AWS CLI against `herald
serve` in its development mode: buses, rules, targets, tags and PutEvents,
success and error paths, with AWS's shapes and exception names. (Delivery
end to end is tested in crates/herald/tests/bus.rs.)

Run by scripts/test (HERALD_BIN names the binary)."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from botocore.exceptions import ClientError

from test_admin import make_client, start, stop

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:f"


class EventBridgeApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp(prefix="herald-events-")
        cls.server = start(cls.data)
        cls.events = make_client(cls.server, "events")

    @classmethod
    def tearDownClass(cls):
        stop(cls.server)
        shutil.rmtree(cls.data, ignore_errors=True)

    def error(self, call):
        with self.assertRaises(ClientError) as caught:
            call()
        e = caught.exception.response["Error"]
        return e["Code"], e.get("Message", "")

    def test_buses(self):
        ev = self.events
        default = ev.describe_event_bus()
        self.assertEqual(default["Name"], "default")
        self.assertTrue(default["Arn"].endswith(":event-bus/default"))
        arn = ev.create_event_bus(Name="orders", Description="shop orders",
                                  Tags=[{"Key": "team", "Value": "shop"}])["EventBusArn"]
        self.assertTrue(arn.startswith("arn:aws:events:"))
        self.assertTrue(arn.endswith(":event-bus/orders"))
        bus = ev.describe_event_bus(Name=arn)
        self.assertEqual((bus["Name"], bus["Description"]), ("orders", "shop orders"))
        self.assertIn("CreationTime", bus)
        self.assertEqual(ev.list_tags_for_resource(ResourceARN=arn)["Tags"], [{"Key": "team", "Value": "shop"}])
        ev.create_event_bus(Name="orders-eu")
        names = [b["Name"] for b in ev.list_event_buses(NamePrefix="orders")["EventBuses"]]
        self.assertEqual(names, ["orders", "orders-eu"])
        page = ev.list_event_buses(Limit=1)
        self.assertEqual(len(page["EventBuses"]), 1)
        rest = ev.list_event_buses(Limit=100, NextToken=page["NextToken"])["EventBuses"]
        self.assertIn("orders-eu", [b["Name"] for b in rest])
        self.assertEqual(self.error(lambda: ev.create_event_bus(Name="orders"))[0], "ResourceAlreadyExistsException")
        self.assertEqual(self.error(lambda: ev.create_event_bus(Name="default"))[0], "ResourceAlreadyExistsException")
        self.assertEqual(self.error(lambda: ev.create_event_bus(Name="bad name"))[0], "ValidationException")
        code, message = self.error(lambda: ev.delete_event_bus(Name="default"))
        self.assertEqual((code, message), ("ValidationException", "Cannot delete event bus default."))
        ev.delete_event_bus(Name="orders-eu")
        ev.delete_event_bus(Name="orders-eu")  # gone already: no error, as AWS
        code, message = self.error(lambda: ev.describe_event_bus(Name="orders-eu"))
        self.assertEqual((code, message), ("ResourceNotFoundException", "Event bus orders-eu does not exist."))

    def test_rules_and_targets(self):
        ev = self.events
        ev.create_event_bus(Name="rules-bus")
        pattern = json.dumps({"source": ["shop"], "detail": {"amount": [{"numeric": [">", 100]}]}})
        arn = ev.put_rule(Name="big", EventBusName="rules-bus", EventPattern=pattern,
                          Description="big orders", Tags=[{"Key": "k", "Value": "v"}])["RuleArn"]
        self.assertTrue(arn.endswith(":rule/rules-bus/big"), arn)
        rule = ev.describe_rule(Name="big", EventBusName="rules-bus")
        self.assertEqual((rule["State"], rule["EventPattern"], rule["EventBusName"]), ("ENABLED", pattern, "rules-bus"))
        ev.disable_rule(Name="big", EventBusName="rules-bus")
        self.assertEqual(ev.describe_rule(Name="big", EventBusName="rules-bus")["State"], "DISABLED")
        ev.enable_rule(Name="big", EventBusName="rules-bus")
        ev.put_rule(Name="big-too", EventBusName="rules-bus", EventPattern=pattern, State="DISABLED")
        listed = ev.list_rules(EventBusName="rules-bus", NamePrefix="big")["Rules"]
        self.assertEqual([r["Name"] for r in listed], ["big", "big-too"])
        self.assertEqual(ev.list_tags_for_resource(ResourceARN=arn)["Tags"], [{"Key": "k", "Value": "v"}])
        ev.tag_resource(ResourceARN=arn, Tags=[{"Key": "k2", "Value": "v2"}])
        ev.untag_resource(ResourceARN=arn, TagKeys=["k"])
        self.assertEqual(ev.list_tags_for_resource(ResourceARN=arn)["Tags"], [{"Key": "k2", "Value": "v2"}])

        # Errors: AWS's names and messages.
        code, message = self.error(lambda: ev.put_rule(Name="x", EventBusName="rules-bus"))
        self.assertEqual((code, message), ("ValidationException", "Parameter(s) EventPattern or ScheduleExpression must be specified."))
        code, message = self.error(lambda: ev.put_rule(Name="x", EventBusName="rules-bus", EventPattern='{"source": "shop"}'))
        self.assertEqual(code, "InvalidEventPatternException")
        self.assertIn("source", message)
        self.assertEqual(self.error(lambda: ev.put_rule(Name="x", EventBusName="nope", EventPattern=pattern))[0],
                         "ResourceNotFoundException")
        code, message = self.error(lambda: ev.put_rule(Name="x", EventBusName="rules-bus", ScheduleExpression="rate(5 minutes)"))
        self.assertEqual((code, message), ("ValidationException", "ScheduleExpression is supported only on the default event bus."))
        self.assertEqual(self.error(lambda: ev.put_rule(Name="x", ScheduleExpression="rate(5 minute)"))[0], "ValidationException")
        code, message = self.error(lambda: ev.describe_rule(Name="nope", EventBusName="rules-bus"))
        self.assertEqual((code, message), ("ResourceNotFoundException", "Rule nope does not exist on EventBus rules-bus."))

        # Targets.
        r = ev.put_targets(Rule="big", EventBusName="rules-bus", Targets=[
            {"Id": "ws", "Arn": "channel:/default/orders", "InputPath": "$.detail"},
            {"Id": "fn", "Arn": FUNCTION, "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 600},
             "DeadLetterConfig": {"Arn": "file:///tmp/herald-dlq.jsonl"},
             "InputTransformer": {"InputPathsMap": {"id": "$.detail.id"}, "InputTemplate": '{"order": "<id>"}'}},
        ])
        self.assertEqual((r["FailedEntryCount"], r["FailedEntries"]), (0, []))
        targets = ev.list_targets_by_rule(Rule="big", EventBusName="rules-bus")["Targets"]
        self.assertEqual([t["Id"] for t in targets], ["ws", "fn"])
        self.assertEqual(targets[1]["RetryPolicy"], {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 600})
        self.assertEqual(targets[1]["InputTransformer"]["InputTemplate"], '{"order": "<id>"}')
        # The same Id replaces; a sixth target is over the limit.
        ev.put_targets(Rule="big", EventBusName="rules-bus", Targets=[{"Id": "ws", "Arn": "channel:/default/other"}])
        self.assertEqual(ev.list_targets_by_rule(Rule="big", EventBusName="rules-bus")["Targets"][0]["Arn"], "channel:/default/other")
        many = [{"Id": f"t{i}", "Arn": FUNCTION} for i in range(4)]
        self.assertEqual(self.error(lambda: ev.put_targets(Rule="big", EventBusName="rules-bus", Targets=many))[0],
                         "LimitExceededException")
        code, message = self.error(lambda: ev.put_targets(Rule="big", EventBusName="rules-bus", Targets=[
            {"Id": "x", "Arn": FUNCTION, "Input": "{}", "InputPath": "$.detail"}]))
        self.assertEqual((code, message), ("ValidationException", "Only one of Input, InputPath, or InputTransformer must be provided."))
        self.assertEqual(self.error(lambda: ev.put_targets(Rule="nope", EventBusName="rules-bus", Targets=[
            {"Id": "x", "Arn": FUNCTION}]))[0], "ResourceNotFoundException")
        self.assertEqual(self.error(lambda: ev.put_targets(Rule="big", EventBusName="rules-bus", Targets=[
            {"Id": "x", "Arn": "arn:aws:ecs:us-east-1:123456789012:cluster/c"}]))[0], "ValidationException")
        # An SQS queue this server has no [[event_sources]] entry for fails alone.
        r = ev.put_targets(Rule="big", EventBusName="rules-bus", Targets=[
            {"Id": "q", "Arn": "arn:aws:sqs:us-east-1:123456789012:q"}])
        self.assertEqual(r["FailedEntryCount"], 1)
        self.assertEqual(r["FailedEntries"][0]["TargetId"], "q")
        # A rule with targets is deleted only with Force.
        code, message = self.error(lambda: ev.delete_rule(Name="big", EventBusName="rules-bus"))
        self.assertEqual((code, message), ("ValidationException", "Rule can't be deleted since it has targets."))
        ev.remove_targets(Rule="big", EventBusName="rules-bus", Ids=["ws"])
        self.assertEqual([t["Id"] for t in ev.list_targets_by_rule(Rule="big", EventBusName="rules-bus")["Targets"]], ["fn"])
        ev.delete_rule(Name="big", EventBusName="rules-bus", Force=True)
        self.assertEqual(self.error(lambda: ev.describe_rule(Name="big", EventBusName="rules-bus"))[0], "ResourceNotFoundException")
        ev.delete_event_bus(Name="rules-bus")
        self.assertEqual(self.error(lambda: ev.list_rules(EventBusName="rules-bus"))[0], "ResourceNotFoundException")

    def test_put_events(self):
        ev = self.events
        ok = {"Source": "shop", "DetailType": "Order Placed", "Detail": json.dumps({"id": "o-1"})}
        r = ev.put_events(Entries=[ok, {"Source": "shop", "DetailType": "x"},
                                   {"Source": "shop", "DetailType": "x", "Detail": "not json"},
                                   dict(ok, EventBusName="nope")])
        self.assertEqual(r["FailedEntryCount"], 3)
        self.assertIn("EventId", r["Entries"][0])
        self.assertEqual(r["Entries"][1], {"ErrorCode": "InvalidArgument",
                                           "ErrorMessage": "Parameter Detail is not valid. Reason: Detail is a required argument."})
        self.assertEqual(r["Entries"][2], {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."})
        self.assertEqual(r["Entries"][3]["ErrorCode"], "ResourceNotFoundException")
        code, message = self.error(lambda: ev.put_events(Entries=[ok] * 11))
        self.assertEqual(code, "ValidationException")
        big = dict(ok, Detail=json.dumps({"x": "y" * (1 << 20)}))
        code, message = self.error(lambda: ev.put_events(Entries=[big]))
        self.assertEqual((code, message), ("ValidationException", "Total size of the entries in the request is over the limit."))

    def test_connections_and_api_destinations(self):
        ev = self.events
        conn = ev.create_connection(Name="hooks", AuthorizationType="API_KEY",
                                    AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "x-key", "ApiKeyValue": "secret-1"}})
        self.assertEqual(conn["ConnectionState"], "AUTHORIZED")
        described = ev.describe_connection(Name="hooks")
        self.assertEqual(described["AuthParameters"], {"ApiKeyAuthParameters": {"ApiKeyName": "x-key"}})
        self.assertNotIn("secret-1", json.dumps(described, default=str))
        self.assertEqual([c["Name"] for c in ev.list_connections(NamePrefix="hoo")["Connections"]], ["hooks"])
        self.assertEqual(self.error(lambda: ev.create_connection(
            Name="hooks", AuthorizationType="API_KEY",
            AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v"}}))[0], "ResourceAlreadyExistsException")
        self.assertEqual(self.error(lambda: ev.create_connection(
            Name="b", AuthorizationType="BASIC", AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v"}}))[0],
            "ValidationException")
        dest = ev.create_api_destination(Name="hook", ConnectionArn=conn["ConnectionArn"],
                                         InvocationEndpoint="https://example.com/hooks/*", HttpMethod="POST",
                                         InvocationRateLimitPerSecond=20)
        self.assertEqual(dest["ApiDestinationState"], "ACTIVE")
        d = ev.describe_api_destination(Name="hook")
        self.assertEqual((d["InvocationEndpoint"], d["HttpMethod"], d["InvocationRateLimitPerSecond"]),
                         ("https://example.com/hooks/*", "POST", 20))
        self.assertEqual(len(ev.list_api_destinations(ConnectionArn=conn["ConnectionArn"])["ApiDestinations"]), 1)
        self.assertEqual(self.error(lambda: ev.create_api_destination(
            Name="x", ConnectionArn=conn["ConnectionArn"] + "-nope", InvocationEndpoint="https://example.com",
            HttpMethod="POST"))[0], "ResourceNotFoundException")
        self.assertEqual(self.error(lambda: ev.delete_connection(Name="hooks"))[0], "ValidationException")
        # Updates: a new key value alone (the name is kept), a new rate and method.
        u = ev.update_connection(Name="hooks", AuthParameters={"ApiKeyAuthParameters": {"ApiKeyValue": "secret-2"}},
                                 Description="rotated")
        self.assertEqual(u["ConnectionState"], "AUTHORIZED")
        described = ev.describe_connection(Name="hooks")
        self.assertEqual((described["AuthParameters"], described["Description"]),
                         ({"ApiKeyAuthParameters": {"ApiKeyName": "x-key"}}, "rotated"))
        self.assertEqual(self.error(lambda: ev.update_connection(Name="hooks", AuthorizationType="BASIC"))[0],
                         "ValidationException")
        self.assertEqual(self.error(lambda: ev.update_connection(Name="nope", Description="x"))[0],
                         "ResourceNotFoundException")
        ev.update_api_destination(Name="hook", InvocationRateLimitPerSecond=5, HttpMethod="PUT")
        d = ev.describe_api_destination(Name="hook")
        self.assertEqual((d["InvocationEndpoint"], d["HttpMethod"], d["InvocationRateLimitPerSecond"]),
                         ("https://example.com/hooks/*", "PUT", 5))
        self.assertEqual(self.error(lambda: ev.update_api_destination(Name="hook", HttpMethod="FETCH"))[0],
                         "ValidationException")
        ev.put_rule(Name="hooked", EventPattern='{"source": ["hooks"]}')
        r = ev.put_targets(Rule="hooked", Targets=[{"Id": "h", "Arn": dest["ApiDestinationArn"],
                                                    "HttpParameters": {"PathParameterValues": ["$.detail.id"]}}])
        self.assertEqual(r["FailedEntryCount"], 0)
        ev.delete_rule(Name="hooked", Force=True)
        ev.delete_api_destination(Name="hook")
        self.assertEqual(ev.delete_connection(Name="hooks")["ConnectionState"], "DELETING")
        code, message = self.error(lambda: ev.describe_api_destination(Name="hook"))
        self.assertEqual(code, "ResourceNotFoundException")

    def test_the_aws_cli(self):
        aws = os.path.join(os.path.dirname(os.path.realpath(__import__("sys").executable)), "aws")
        env = dict(os.environ, **self.server["exports"],
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")

        def cli(*args):
            run = subprocess.run([aws, "events", *args, "--endpoint-url", self.server["admin"], "--output", "json"],
                                 env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode, 0, run.stderr)
            return json.loads(run.stdout) if run.stdout.strip() else None

        cli("put-rule", "--name", "cli-rule", "--event-pattern", '{"source": ["cli"]}')
        cli("put-targets", "--rule", "cli-rule", "--targets", "Id=ws,Arn=channel:/default/cli")
        out = cli("put-events", "--entries", json.dumps([{"Source": "cli", "DetailType": "t", "Detail": "{}"}]))
        self.assertEqual(out["FailedEntryCount"], 0)
        self.assertEqual(len(out["Entries"][0]["EventId"]), 36)
        rules = cli("list-rules", "--name-prefix", "cli-")["Rules"]
        self.assertEqual([r["Name"] for r in rules], ["cli-rule"])


if __name__ == "__main__":
    unittest.main()
