// .teamcity/settings.kts: a build configuration that runs the test suite with medusa.
//
// medusa sees TEAMCITY_VERSION: it reports every test to TeamCity as it finishes, in
// service messages on stdout (one flow per runner), and keeps its console output plain.
// No report file and no "XML report processing" feature are needed.
import jetbrains.buildServer.configs.kotlin.*
import jetbrains.buildServer.configs.kotlin.buildSteps.script

version = "2024.03"

project {
    buildType(Tests)
}

object Tests : BuildType({
    name = "Tests"

    vcs {
        root(DslContext.settingsRoot)
    }

    steps {
        script {
            name = "medusa"
            scriptContent = """
                python3 -m pip install medusa-test-runner -e .
                medusa --retries 1
            """.trimIndent()
        }
    }

    failureConditions {
        // A test that failed and then passed on a retry (--retries) is flaky, not failed.
        // medusa also sends ##teamcity[testRetrySupport enabled='true'] when it retries.
        supportTestRetry = true
        // medusa's exit code says what the tests cannot: 2 interrupted, 3 internal
        // error, 4 usage error, 5 no tests.
        nonZeroExitCode = true
    }
})
