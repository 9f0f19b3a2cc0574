"""Small pure numeric functions (fusion math, ...) used by the archs, data and runners."""
