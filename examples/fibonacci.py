"""The bundled example: `make run` completes the body of fibonacci() at line 7, column 4."""


def fibonacci(n):
    """Return the n-th Fibonacci number."""
    if n < 2:
        return n
    


def is_prime(n):
    """True when n is a prime number."""
    if n < 2:
        return False
    for k in range(2, int(n ** 0.5) + 1):
        if n % k == 0:
            return False
    return True


if __name__ == "__main__":
    print([fibonacci(i) for i in range(10)])
