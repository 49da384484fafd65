from taskq.cli import main

main(prog_name="taskq")
