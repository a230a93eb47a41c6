#include <stdio.h>
int main(void) { puts("amprt"); return 0; }
