from real_robot.twin.station import main

main()
