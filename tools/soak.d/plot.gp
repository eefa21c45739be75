# tools/soak's plot: the daemon's RSS (MiB, left axis) and open fds (right
# axis) against time, from samples.csv (the "rest" row is left out).
#   gnuplot -e "csv='samples.csv'; png='soak.png'; title='...'" tools/soak.d/plot.gp
set terminal pngcairo size 800,360 font ",9"
set output png
set datafile separator ","
set key top left
set title title
set xlabel "elapsed (s)"
set ylabel "RSS (MiB)"
set y2label "open fds"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set grid
plot csv every ::1 using 1:($2/1024) with lines lw 2 title "RSS (MiB)", \
     csv every ::1 using 1:3 axes x1y2 with lines lw 2 title "open fds", \
     csv every ::1 using 1:4 axes x1y2 with lines dt 2 title "threads"
