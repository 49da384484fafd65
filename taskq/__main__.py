from taskq.launch import main

main(prog_name="taskq")
