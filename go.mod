module github.com/gatehouse-dev/gatehouse

go 1.26.0
