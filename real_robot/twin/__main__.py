from real_robot.twin.serve import main

main()
