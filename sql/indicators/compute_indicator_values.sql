-- compute_indicator_values: every indicator of the catalogue for every year at five
-- grains (nation, province, city, county, school), from summed numerators and
-- denominators: a region's ratio is sum(numerator) / sum(denominator) over everything in
-- it, never an average of school, county, city or province ratios.
-- Inputs: core_school__yearly_measures (long measures), core_school__yearly_registry,
-- indicator_terms (indicator_id, role numerator|denominator, measure_id) and
-- indicator_catalogue (multiplier, decimals, aggregation, rounding, is_school_level).
-- Regions come from the registry: a school's province, city and county are its registry
-- row's. A city measure (school_code null, from the bureau's city_reference) names only its
-- city; its province is the one the registry gives that city in that year. A city the
-- registry does not place in exactly one province keeps its city row and counts in the
-- nation, but in no province.
-- Aggregation 'sum' (the default) sums numerator and denominator over the schools (and
-- city measures) of a region; 'max' / 'min' take the largest / smallest value of a single
-- measure in the region (a standard or floor that applies to every school). Rounding
-- 'half_up' rounds as reports round; 'down' truncates toward zero. Indicators that are
-- not school-level (is_school_level false) have no county or school value.
-- Output grain: one row per (year, region_level, region key, indicator_id); the region key
-- is province_name, city_name, county_name, school_code as far as the level goes.
with measures as (
    select * from core_school__yearly_measures
),

registry as (
    select * from core_school__yearly_registry
),

terms as (
    select * from indicator_terms
),

catalogue as (
    select distinct indicator_id, multiplier, decimals, aggregation, rounding, is_school_level
    from indicator_catalogue
),

-- The province of each city, where the year's registry gives the city exactly one.
city_provinces as (
    select
        year,
        city_name,
        min(province_name) as province_name
    from registry
    group by year, city_name
    having count(distinct province_name) = 1
),

-- School measures take their region from the registry; schools not in it are left out.
-- City measures (school_code null) carry their city already and take its province.
located as (
    select
        measures.year,
        coalesce(registry.province_name, city_provinces.province_name) as province_name,
        coalesce(measures.city_name, registry.city_name) as city_name,
        registry.county_name,
        measures.school_code,
        registry.school_name,
        measures.measure_id,
        measures.measure_value
    from measures
    left join registry
        on measures.year = registry.year and measures.school_code = registry.school_code
    left join city_provinces
        on measures.school_code is null
        and measures.year = city_provinces.year
        and measures.city_name = city_provinces.city_name
    where measures.school_code is null or registry.school_code is not null
),

term_values as (
    select
        located.*,
        terms.indicator_id,
        terms.role
    from located
    inner join terms on located.measure_id = terms.measure_id
),

summed as (
    select
        year,
        case
            when grouping(province_name) = 1 then 'nation'
            when grouping(city_name) = 1 then 'province'
            when grouping(county_name) = 1 then 'city'
            when grouping(school_code) = 1 then 'county'
            else 'school'
        end as region_level,
        province_name,
        city_name,
        county_name,
        school_code,
        case when grouping(school_code) = 0 then min(school_name) end as school_name,
        indicator_id,
        sum(measure_value) filter (where role = 'numerator') as numerator_sum,
        max(measure_value) filter (where role = 'numerator') as numerator_max,
        min(measure_value) filter (where role = 'numerator') as numerator_min,
        sum(measure_value) filter (where role = 'denominator') as denominator,
        count(*) filter (where role = 'denominator') as denominator_terms
    from term_values
    group by grouping sets (
        (year, indicator_id),
        (year, indicator_id, province_name),
        (year, indicator_id, province_name, city_name),
        (year, indicator_id, province_name, city_name, county_name),
        (year, indicator_id, province_name, city_name, county_name, school_code)
    )
),

aggregated as (
    select
        summed.*,
        case catalogue.aggregation
            when 'max' then summed.numerator_max
            when 'min' then summed.numerator_min
            else summed.numerator_sum
        end as numerator
    from summed
    inner join catalogue on summed.indicator_id = catalogue.indicator_id
),

valued as (
    select
        aggregated.*,
        catalogue.decimals,
        catalogue.rounding,
        case
            -- Indicators built on city-only measures have no county or school value.
            when aggregated.region_level in ('county', 'school')
                and not catalogue.is_school_level then null
            when aggregated.denominator_terms = 0 then aggregated.numerator * catalogue.multiplier
            when aggregated.denominator = 0 then null
            else aggregated.numerator * catalogue.multiplier / aggregated.denominator
        end as value_unrounded
    from aggregated
    inner join catalogue on aggregated.indicator_id = catalogue.indicator_id
    -- City measures group under a null county and school, unplaced cities under a null
    -- province: those are not regions.
    where not (aggregated.region_level = 'school' and aggregated.school_code is null)
        and not (aggregated.region_level = 'county' and aggregated.county_name is null)
        and not (aggregated.region_level = 'province' and aggregated.province_name is null)
),

final as (
    select
        year,
        region_level,
        province_name,
        city_name,
        county_name,
        school_code,
        school_name,
        indicator_id,
        numerator,
        case when denominator_terms = 0 then null else denominator end as denominator,
        value_unrounded,
        -- Half-up rounding as reports round; the epsilon keeps 34.855 from becoming 34.85
        -- through binary floating point (and 0.29 * 100 from truncating to 28).
        case rounding
            when 'down' then
                trunc(value_unrounded * pow(10, decimals) + sign(value_unrounded) * 1e-9)
                / pow(10, decimals)
            else round(value_unrounded + sign(value_unrounded) * 1e-9, decimals::integer)
        end as indicator_value
    from valued
)

select * from final
order by indicator_id, year, region_level, province_name, city_name, county_name, school_code
