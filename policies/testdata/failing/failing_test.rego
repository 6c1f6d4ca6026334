package gatehouse_failing_test

# Fixtures for TestRunTestsReportsFailures: one passing, one failing, one
# erroring (unmocked PagerDuty built-in) test.
test_passes := true

test_fails if 1 == 2

test_unmocked_pagerduty if pagerduty.on_call("a@example.com", "checkout")
