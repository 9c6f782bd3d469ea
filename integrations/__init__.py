"""CI integrations: report formats that CI servers read, and how medusa finds its CI.

This folder is the package `medusa.integrations` (through the link medusa/integrations,
so a checkout, `pip install -e .` and `pip install .` import it alike). Each platform's folder
holds its formatter, a reporter like those in medusa/reporters/, and a ready-to-copy
example configuration:

    junit/      --format junit:PATH   JUnit XML, read by Jenkins, Bamboo and most others
    jenkins/    Jenkinsfile
    bamboo/     bamboo-specs.yaml
    teamcity/   --format teamcity     service messages on stdout; settings.kts
    buildbot/   --format buildbot     lines that the MedusaTest step (step.py) counts; master.cfg
    github/     --format github       annotations and a job summary; workflow.yml

names.py gives every format the same stable test names; ci.py says which CI runs us and
what that CI gets by default.
"""
