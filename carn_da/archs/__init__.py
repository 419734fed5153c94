from carn_da.registration import import_role_modules

_modules = import_role_modules(__name__, __file__, '_arch')
