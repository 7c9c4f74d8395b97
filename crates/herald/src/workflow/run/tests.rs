//! The interpreter's tables: `TestState` cases, `Assign`'s order, scopes.

use super::*;
use crate::workflow::definition::parse_state;

/// Tasks for the table: `arn:aws:lambda:...:function:double` doubles
/// `n`; `...:function:fail` fails with `Custom.Error`.
struct Fake;

impl Tasks for Fake {
    fn call<'a>(&'a self, resource: &'a str, args: Value) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            match resource.rsplit(':').next() {
                Some("double") => Ok(json!({"n": args["n"].as_i64().unwrap_or(0) * 2})),
                _ => Err(Failure::new("Custom.Error", "it failed")),
            }
        })
    }
}

fn runner() -> Runner {
    Runner {
        tasks: Arc::new(Fake),
        tokens: Arc::default(),
        history: Arc::default(),
        context: json!({"Execution": {"Id": "exec-1", "Name": "e"}, "StateMachine": {"Id": "sm"}}),
        no_wait: true,
    }
}

/// State, input, variables; status, output (or error name), next state.
type Case = (
    Value,
    Value,
    Value,
    &'static str,
    Value,
    Option<&'static str>,
);

/// (state, input, variables) → (status, output or error, next).
#[tokio::test]
async fn a_table_of_test_state_cases() {
    let double = "arn:aws:lambda:us-east-1:000000000000:function:double";
    let fail = "arn:aws:lambda:us-east-1:000000000000:function:fail";
    let table: Vec<Case> = vec![
        // A rule's own Assign, taken with the rule (checked below via output).
        (
            json!({"Type": "Choice", "QueryLanguage": "JSONata", "Choices": [{"Condition": "{% $states.input.n > 1 %}", "Assign": {"big": true}, "Next": "Big"}], "Default": "Small"}),
            json!({"n": 5}),
            json!({}),
            "SUCCEEDED",
            json!({"n": 5}),
            Some("Big"),
        ),
        // A ResultPath that cannot apply is States.ResultPathMatchFailure, which States.ALL catches.
        (
            json!({"Type": "Pass", "Result": 1, "ResultPath": "$.r", "End": true}),
            json!("text"),
            json!({}),
            "FAILED",
            json!("States.ResultPathMatchFailure"),
            None,
        ),
        (
            json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:double", "ResultPath": "$.r",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": null, "Next": "C"}], "End": true}),
            json!("text"),
            json!({}),
            "CAUGHT_ERROR",
            json!("text"),
            Some("C"),
        ),
        // ErrorPath and CausePath may be intrinsic functions.
        (
            json!({"Type": "Fail", "ErrorPath": "States.Format('E{}', $.n)", "CausePath": "States.JsonToString($.why)"}),
            json!({"n": 7, "why": {"a": 1}}),
            json!({}),
            "FAILED",
            json!("E7"),
            None,
        ),
        // Pass, JSONPath: Parameters with paths, intrinsics, context, ResultPath.
        (
            json!({"Type": "Pass", "Parameters": {"who.$": "$.name", "hi.$": "States.Format('hi {}', $.name)", "exec.$": "$$.Execution.Id"}, "ResultPath": "$.out", "Next": "N"}),
            json!({"name": "ada"}),
            json!({}),
            "SUCCEEDED",
            json!({"name": "ada", "out": {"who": "ada", "hi": "hi ada", "exec": "exec-1"}}),
            Some("N"),
        ),
        // InputPath and OutputPath; ResultPath null keeps the input.
        (
            json!({"Type": "Pass", "InputPath": "$.a", "Result": {"x": 1}, "ResultPath": null, "OutputPath": "$.a.b", "End": true}),
            json!({"a": {"b": 7}}),
            json!({}),
            "SUCCEEDED",
            json!(7),
            None,
        ),
        // Pass, JSONata: Output with $states.input and a variable.
        (
            json!({"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input.n + $bonus %}", "End": true}),
            json!({"n": 2}),
            json!({"bonus": 40}),
            "SUCCEEDED",
            json!(42),
            None,
        ),
        // Task, JSONPath: Parameters, ResultSelector, ResultPath.
        (
            json!({"Type": "Task", "Resource": double, "Parameters": {"n.$": "$.n"}, "ResultSelector": {"doubled.$": "$.n"}, "ResultPath": "$.r", "End": true}),
            json!({"n": 4}),
            json!({}),
            "SUCCEEDED",
            json!({"n": 4, "r": {"doubled": 8}}),
            None,
        ),
        // Task, JSONata: Arguments and Output with $states.result.
        (
            json!({"Type": "Task", "QueryLanguage": "JSONata", "Resource": double, "Arguments": {"n": "{% $states.input.v %}"}, "Output": "{% $states.result.n %}", "End": true}),
            json!({"v": 5}),
            json!({}),
            "SUCCEEDED",
            json!(10),
            None,
        ),
        // A failing task: caught (JSONPath ResultPath of the error output).
        (
            json!({"Type": "Task", "Resource": fail, "Catch": [{"ErrorEquals": ["Custom.Error"], "ResultPath": "$.err", "Next": "Handle"}], "End": true}),
            json!({"k": 1}),
            json!({}),
            "CAUGHT_ERROR",
            json!({"k": 1, "err": {"Error": "Custom.Error", "Cause": "it failed"}}),
            Some("Handle"),
        ),
        // States.ALL catches, JSONata Output with $states.errorOutput.
        (
            json!({"Type": "Task", "QueryLanguage": "JSONata", "Resource": fail, "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput.Error %}", "Next": "H"}], "End": true}),
            json!({}),
            json!({}),
            "CAUGHT_ERROR",
            json!("Custom.Error"),
            Some("H"),
        ),
        // States.TaskFailed retried: RETRIABLE.
        (
            json!({"Type": "Task", "Resource": fail, "Retry": [{"ErrorEquals": ["States.TaskFailed"]}], "End": true}),
            json!({}),
            json!({}),
            "RETRIABLE",
            json!("Custom.Error"),
            None,
        ),
        // Uncaught: FAILED with the error.
        (
            json!({"Type": "Task", "Resource": fail, "End": true}),
            json!({}),
            json!({}),
            "FAILED",
            json!("Custom.Error"),
            None,
        ),
        // Choice, JSONPath: rules in order, then Default.
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}, {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Mid"}], "Default": "Small"}),
            json!({"n": 5}),
            json!({}),
            "SUCCEEDED",
            json!({"n": 5}),
            Some("Mid"),
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}], "Default": "Small"}),
            json!({"n": 0}),
            json!({}),
            "SUCCEEDED",
            json!({"n": 0}),
            Some("Small"),
        ),
        // Choice, JSONata: Condition with a variable; no match and no Default fails.
        (
            json!({"Type": "Choice", "QueryLanguage": "JSONata", "Choices": [{"Condition": "{% $states.input.n > $limit %}", "Next": "Over"}], "Default": "Under"}),
            json!({"n": 5}),
            json!({"limit": 3}),
            "SUCCEEDED",
            json!({"n": 5}),
            Some("Over"),
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.n", "IsPresent": true, "Next": "Has"}]}),
            json!({}),
            json!({}),
            "FAILED",
            json!("States.NoChoiceMatched"),
            None,
        ),
        // Wait (TestState does not wait), Succeed, Fail with paths.
        (
            json!({"Type": "Wait", "SecondsPath": "$.s", "Next": "After"}),
            json!({"s": 100}),
            json!({}),
            "SUCCEEDED",
            json!({"s": 100}),
            Some("After"),
        ),
        (
            json!({"Type": "Succeed", "OutputPath": "$.keep"}),
            json!({"keep": [1]}),
            json!({}),
            "SUCCEEDED",
            json!([1]),
            None,
        ),
        (
            json!({"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}),
            json!({"e": "E1", "c": "C1"}),
            json!({}),
            "FAILED",
            json!("E1"),
            None,
        ),
        // Parallel: each branch's output, in order.
        (
            json!({"Type": "Parallel", "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": true}}},
            {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": double, "End": true}}}], "End": true}),
            json!({"n": 3}),
            json!({}),
            "SUCCEEDED",
            json!(["a", {"n": 6}]),
            None,
        ),
        // Map, JSONPath: ItemsPath, ItemSelector with the item's index and value.
        (
            json!({"Type": "Map", "ItemsPath": "$.xs", "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}),
            json!({"xs": ["a", "b"]}),
            json!({}),
            "SUCCEEDED",
            json!([{"i": 0, "v": "a"}, {"i": 1, "v": "b"}]),
            None,
        ),
        // Map, JSONata: Items; an iteration reads an outer variable.
        (
            json!({"Type": "Map", "QueryLanguage": "JSONata", "Items": "{% $states.input.xs %}",
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% $states.input * $k %}", "End": true}}}, "End": true}),
            json!({"xs": [1, 2]}),
            json!({"k": 10}),
            "SUCCEEDED",
            json!([10, 20]),
            None,
        ),
        // A Map iteration failing beyond the tolerance fails the state.
        (
            json!({"Type": "Map", "ItemsPath": "$.xs", "ToleratedFailureCount": 0,
                "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": fail, "End": true}}}, "End": true}),
            json!({"xs": [1]}),
            json!({}),
            "FAILED",
            json!("States.ExceedToleratedFailureThreshold"),
            None,
        ),
    ];
    for (state, input, vars, status, want, next) in table {
        let s = parse_state(&state.to_string()).unwrap_or_else(|d| panic!("{state}: {d:?}"));
        let (got_status, result, got_next, _) = runner()
            .test_one(&s, input, vars.as_object().unwrap().clone())
            .await;
        assert_eq!(got_status, status, "{state}");
        match result {
            Ok(out) => assert_eq!(out, want, "{state}"),
            Err(f) => assert_eq!(json!(f.error), want, "{state}: {}", f.cause),
        }
        assert_eq!(got_next.as_deref(), next, "{state}");
    }
}

/// A choice rule's `Assign` is stored when that rule is taken.
#[tokio::test]
async fn a_choice_rules_assign_is_stored() {
    let s = parse_state(
        &json!({"Type": "Choice", "QueryLanguage": "JSONata", "Choices": [
            {"Condition": "{% $states.input.n > 1 %}", "Assign": {"big": "{% $states.input.n %}"}, "Next": "Big"}],
            "Default": "Small"})
        .to_string(),
    )
    .unwrap();
    let (_, _, next, vars) = runner().test_one(&s, json!({"n": 5}), Map::new()).await;
    assert_eq!(next.as_deref(), Some("Big"));
    assert_eq!(Value::Object(vars), json!({"big": 5}));
}

/// The first failing branch fails a `Parallel` at once, while another
/// branch still waits (here: for a task token that never comes).
#[tokio::test]
async fn a_failing_branch_fails_the_parallel_state_at_once() {
    let s = parse_state(
        &json!({"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "Hang", "States": {"Hang": {"Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:000000000000:function:double.waitForTaskToken", "End": true}}},
            {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Boom"}}}]})
        .to_string(),
    )
    .unwrap();
    let (status, result, _, _) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        runner().test_one(&s, json!({}), Map::new()),
    )
    .await
    .expect("the Parallel state failed without waiting for the other branch");
    assert_eq!(status, "FAILED");
    assert_eq!(result.unwrap_err().error, "Boom");
}

/// `Assign` sees the input, the result and the variables as they were:
/// not the values it is assigning; a later state sees them.
#[tokio::test]
async fn assign_is_evaluated_whole_then_stored() {
    let s = parse_state(
        &json!({"Type": "Pass", "QueryLanguage": "JSONata",
            "Assign": {"a": "{% $states.input.x %}", "b": "{% $a %}", "c": "{% $states.result.y %}"},
            "Output": {"y": 2}, "End": true})
        .to_string(),
    )
    .unwrap();
    let vars = json!({"a": "old"}).as_object().unwrap().clone();
    let (_, _, _, after) = runner().test_one(&s, json!({"x": "new"}), vars).await;
    assert_eq!(
        Value::Object(after),
        json!({"a": "new", "b": "old", "c": null})
    );
    // JSONPath Assign: `$` is the state's result.
    let s = parse_state(
        &json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:double",
            "Assign": {"d.$": "$.n", "first.$": "$$.State.Name"}, "End": true})
        .to_string(),
    )
    .unwrap();
    let (_, _, _, after) = runner().test_one(&s, json!({"n": 21}), Map::new()).await;
    assert_eq!(Value::Object(after), json!({"d": 42, "first": "TestState"}));
}

/// A branch reads the variables outside it; what it assigns stays in it.
#[tokio::test]
async fn branches_read_outer_variables_and_keep_their_own() {
    let def = crate::workflow::definition::parse(
        &json!({"QueryLanguage": "JSONata", "StartAt": "Set", "States": {
            "Set": {"Type": "Pass", "Assign": {"x": 1}, "Next": "Par"},
            "Par": {"Type": "Parallel", "Next": "Read", "Branches": [
                {"StartAt": "In", "States": {"In": {"Type": "Pass", "Assign": {"y": "{% $x + 1 %}"}, "Output": "{% $x %}", "Next": "In2"},
                                             "In2": {"Type": "Pass", "Output": "{% $y %}", "End": true}}}]},
            "Read": {"Type": "Pass", "Output": "{% [$states.input, $x, $y] %}", "End": true}}})
        .to_string(),
    )
    .unwrap();
    let out = runner()
        .machine(&def, json!({}), Vars::default(), Map::new())
        .await
        .unwrap();
    // The branch read $x and set $y = 2 (its output); outside it $y is
    // unknown, and JSONata drops the undefined (and flattens the
    // branch's one-item array).
    assert_eq!(out, json!([2, 1]));
}
